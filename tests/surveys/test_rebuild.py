"""Existing rollups move to the per-template, per-kind rows (issue 19): migration surveys_0006 on a
database of the previous release gives the rows a rebuild gives, and ``python -m services surveys
rebuild-rollups`` recomputes them from the responses, idempotently."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import insert, select

from services.__main__ import main
from services.surveys import domain, rebuild
from services.surveys.models import SurveyAnswerRollup, SurveyResponse, SurveyRollup, SurveyTemplate
from shared.db import Database, migrate
from tests.support.services import migrations_of

OTHER = str(uuid.UUID(int=19))
OTHER_QUESTIONS = [
    {"key": "product", "kind": "recommend", "required": True, "texts": {"en": "Recommend the product?"}},
    {"key": "recommend_store", "kind": "rating", "required": True, "texts": {"en": "Rate the store"}},
]


def a_response(template_id, version, answers, day, **provenance) -> dict:
    moment = datetime.fromisoformat(f"{day}T10:00:00+00:00").astimezone(UTC)
    return {
        "response_id": str(uuid.uuid4()),
        "template_id": template_id,
        "template_version": version,
        "customer_id": str(uuid.uuid4()),
        "channel": provenance.get("channel", "agent"),
        "status": provenance.get("status", "complete"),
        "agent_id": provenance.get("agent_id", "agent-1"),
        "call_id": None,
        "entry_id": None,
        "campaign_id": None,
        "purchase_id": None,
        "product": provenance.get("product"),
        "answers": answers,
        "comment": None,
        "language": "en",
        "started_at": moment,
        "completed_at": moment,
        "day": day,
    }


def rows_of(database, table=SurveyAnswerRollup) -> dict:
    with database.engine.connect() as connection:
        rows = connection.execute(select(table)).mappings().all()
    key = [column.name for column in table.__table__.primary_key.columns]
    return {
        tuple(row[name] for name in key): tuple(row[name] for name in row if name not in key)
        for row in rows
        if row["n"]
    }


def test_the_migration_on_old_rollups_gives_what_a_rebuild_gives(database_factory):
    database = Database(database_factory.url("surveys_old"))
    database_factory.opened.append(database)
    config = migrations_of("surveys").config(database.url)
    command.upgrade(config, "surveys_0005_template_languages")  # the previous release's schema
    default_v2 = [{**q, "kind": "recommend"} if q["key"] == "product" else q for q in domain.DEFAULT_QUESTIONS]
    stored = [
        a_response(domain.DEFAULT_TEMPLATE_ID, 1, {"product": 5, "service": 9, "recommend_store": 2}, "2026-11-02"),
        a_response(domain.DEFAULT_TEMPLATE_ID, 2, {"product": 7, "service": 8}, "2026-11-03", product="Kettle"),
        a_response(OTHER, 1, {"product": 10, "recommend_store": 4}, "2026-11-09", channel="keypad"),
        a_response(OTHER, 1, {"product": 3}, "2026-11-09", status="partial"),
    ]
    with database.engine.begin() as connection:
        table = SurveyTemplate.__table__
        connection.execute(
            insert(table),
            [
                {"template_id": domain.DEFAULT_TEMPLATE_ID, "version": 2, "name": "v2", "questions": default_v2},
                {"template_id": OTHER, "version": 1, "name": "other", "questions": OTHER_QUESTIONS},
            ],
        )
        connection.execute(insert(SurveyResponse.__table__), stored)
        # The previous release's rollups (by key only), as it wrote them.
        old = {}
        for response in stored:
            if response["status"] == "complete":
                deltas = domain.rollup_deltas(
                    response["template_id"],
                    response["day"],
                    {"agent": response["agent_id"], **response},
                    response["answers"],
                    {},
                )
                for key, sums in deltas.items():
                    old.setdefault(key[:6], domain.Sums()).merge(sums)
        connection.execute(
            insert(SurveyRollup.__table__),
            [
                dict(zip(("span", "dimension", "day", "value", "template_id", "question"), key, strict=True))
                | {"n": s.n, "total": s.total, "squares": s.squares}
                | {f"c{score}": s.counts[score - 1] for score in domain.SCALE}
                for key, s in old.items()
            ],
        )
    migrate(database, migrations_of("surveys"))

    migrated, legacy = rows_of(database), rows_of(database, SurveyRollup)
    kinds = {(key[4], key[5], key[6]) for key in migrated}
    assert (domain.DEFAULT_TEMPLATE_ID, "product", "rating") in kinds  # v1's answer
    assert (domain.DEFAULT_TEMPLATE_ID, "product", "recommend") in kinds  # v2's answer
    assert (OTHER, "product", "recommend") in kinds and (OTHER, "recommend_store", "rating") in kinds
    assert rebuild.rebuild_rollups(database) == len(migrated)
    assert rows_of(database) == migrated and rows_of(database, SurveyRollup) == legacy  # nothing else moved


def test_the_rebuild_command_recomputes_the_rollups_and_is_idempotent(database_factory, monkeypatch, capsys):
    database = database_factory.migrated("surveys")
    with database.engine.begin() as connection:
        connection.execute(
            insert(SurveyResponse.__table__),
            [a_response(domain.DEFAULT_TEMPLATE_ID, 1, {"product": 8, "recommend_store": 9}, "2026-11-04")],
        )
    monkeypatch.setenv("SURVEYS_DATABASE_URL", database.url)
    main(["surveys", "rebuild-rollups"])
    assert "rollups rebuilt" in capsys.readouterr().out
    first = rows_of(database)
    assert first[("day", "all", "2026-11-04", "", domain.DEFAULT_TEMPLATE_ID, "recommend_store", "recommend")][0] == 1
    assert first[("week", "agent", "2026-11-02", "agent-1", domain.DEFAULT_TEMPLATE_ID, "product", "rating")][0] == 1
    main(["surveys", "rebuild-rollups"])
    assert rows_of(database) == first
