"""The rollups the metrics read equal a full recomputation from the stored responses,
whatever responses arrive in whatever order, to several templates that share question keys with
different kinds and to versions that change a question's kind (a property test on the real
database); a rebuild (``rebuild-rollups``) writes the same rows again."""

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.surveys import domain, incoming, rebuild, responses, survey_templates, views
from services.surveys.domain import Provenance
from services.surveys.models import SurveyAnswerRollup, SurveyCount, SurveyResponse, SurveyRollup
from shared.unit_of_work import UnitOfWork

PRODUCTS = {str(uuid.UUID(int=n + 1)): f"Product {n}" for n in range(3)}
KEYS = [question["key"] for question in domain.DEFAULT_QUESTIONS] + ["extra"]
START = datetime(2026, 3, 1, 12, tzinfo=UTC)


def question(key, kind, text):
    return {"key": key, "kind": kind, "required": True, "texts": {"en": text}}


# Versions answered by the responses, as (template, its questions); "other" shares keys with the
# default template under other kinds, and each template has a version that changes a kind.
VERSIONS = {
    "default v2": [  # service becomes a recommend question; product only changes its text
        {**q, "kind": "recommend"} if q["key"] == "service" else q for q in domain.DEFAULT_QUESTIONS
    ],
    "other v1": [
        question("product", "recommend", "Recommend the product?"),
        question("recommend_store", "rating", "Rate the store"),
        question("extra", "rating", "Anything else?"),
    ],
    "other v2": [
        question("product", "rating", "Rate the product"),
        question("recommend_store", "rating", "Rate the store again"),
    ],
}


def create_versions(database) -> dict[str, tuple[str, int]]:
    """The templates of VERSIONS: name -> (template_id, version)."""
    made = {"default v1": (domain.DEFAULT_TEMPLATE_ID, 1)}
    other = None
    for name, questions in VERSIONS.items():
        with UnitOfWork(database, source="surveys") as uow:
            row = survey_templates.create_template_version(
                uow,
                template_id=domain.DEFAULT_TEMPLATE_ID if name.startswith("default") else other,
                name=name,
                questions=questions,
                comment_enabled=True,
            )
            made[name] = (row.template_id, row.version)
            if name.startswith("other"):
                other = row.template_id
    return made


TEMPLATE_VERSIONS = ("default v1", *VERSIONS)
answer = st.integers(min_value=1, max_value=10)
a_response = st.fixed_dictionaries(
    {
        "day": st.integers(min_value=0, max_value=20),
        "version": st.sampled_from(TEMPLATE_VERSIONS),
        "answers": st.fixed_dictionaries({key: answer for key in KEYS}),
        "partial_keys": st.lists(st.sampled_from(KEYS), unique=True, max_size=4),
        "partial": st.booleans(),
        "agent": st.sampled_from([None, "agent-1", "agent-2"]),
        "campaign": st.sampled_from([None, str(uuid.UUID(int=99))]),
        "purchase": st.sampled_from([None, *PRODUCTS]),
        "channel": st.sampled_from(["agent", "keypad", "link"]),
    }
)


def submit(database, spec, versions) -> None:
    template_id, version = versions[spec["version"]]
    asked = [q["key"] for q in VERSIONS.get(spec["version"], domain.DEFAULT_QUESTIONS)]
    keys = [key for key in spec["partial_keys"] if key in asked] if spec["partial"] else asked
    answers = {key: spec["answers"][key] for key in keys}
    with UnitOfWork(database, source="surveys") as uow:
        responses.submit_response(
            uow,
            domain.LowScoreRule(),
            template_id=template_id,
            template_version=version,
            customer_id=str(uuid.uuid4()),
            channel=spec["channel"],
            answers=answers,
            comment=None,
            language="en",
            partial=spec["partial"],
            provenance=Provenance(agent_id=spec["agent"], campaign_id=spec["campaign"], purchase_id=spec["purchase"]),
            now=START + timedelta(days=spec["day"]),
        )


def record_purchase(database, purchase_id) -> None:
    with UnitOfWork(database, source="surveys") as uow:
        incoming.record_purchase(
            uow,
            {
                "purchase_id": purchase_id,
                "customer_id": str(uuid.uuid4()),
                "sku": "SKU",
                "product": PRODUCTS[purchase_id],
                "purchased_at": "2026-02-01T10:00:00Z",
            },
        )
        uow.commit()


def stored_rollups(database, table=SurveyAnswerRollup) -> dict:
    with database.engine.connect() as connection:
        rows = connection.execute(select(table)).mappings().all()
    result = {}
    for row in rows:
        if row["n"] == 0:  # a bucket emptied by a move (a purchase arriving late) counts as absent
            continue
        key = (row["span"], row["dimension"], row["day"], row["value"], row["template_id"], row["question"])
        if table is SurveyAnswerRollup:
            key += (row["kind"],)
        result[key] = (row["n"], row["total"], row["squares"], [row[f"c{score}"] for score in domain.SCALE])
    return result


def recomputed(database) -> tuple[dict, Counter]:
    with database.engine.connect() as connection:
        responses = connection.execute(select(SurveyResponse)).mappings().all()
    complete = [
        {
            "template_id": r["template_id"],
            "template_version": r["template_version"],
            "day": r["day"],
            "answers": r["answers"],
            "product": r["product"],
            "agent": r["agent_id"],
            "campaign": r["campaign_id"],
            "channel": r["channel"],
        }
        for r in responses
        if r["status"] == "complete"
    ]
    with UnitOfWork(database, source="surveys", read_only=True) as uow:
        templates = {(t.template_id, t.version): t for t in views.template_versions(uow)}
    rollups = {
        key: (sums.n, sums.total, sums.squares, sums.counts)
        for key, sums in domain.recompute_rollups(complete, templates).items()
    }
    counts = Counter()
    for r in responses:
        dims = {"product": r["product"], "agent": r["agent_id"], "campaign": r["campaign_id"], "channel": r["channel"]}
        measure = {"complete": "completed", "partial": "partial"}[r["status"]]
        for dimension, value in domain.dimension_values(dims):
            counts[(dimension, r["day"], value, r["template_id"], measure)] += 1
    return rollups, counts


def stored_counts(database) -> Counter:
    with database.engine.connect() as connection:
        rows = connection.execute(select(SurveyCount)).mappings().all()
    return Counter(
        {
            (row["dimension"], row["day"], row["value"], row["template_id"], row["measure"]): row["count"]
            for row in rows
            if row["count"]
        }
    )


def test_rollups_equal_a_recomputation_after_random_inserts(database_factory):
    database = database_factory.migrated("surveys")
    versions = create_versions(database)
    record_purchase(database, next(iter(PRODUCTS)))  # known before its responses; the others arrive later
    late = list(PRODUCTS)[1:]

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        batch=st.lists(a_response, min_size=1, max_size=12),
        purchase_now=st.sampled_from([None, *late]),
        first=st.integers(min_value=0, max_value=20),
        length=st.integers(min_value=0, max_value=20),
        group_by=st.sampled_from([(), ("week",), ("day", "agent"), ("product",), ("week", "channel")]),
        rebuild_now=st.booleans(),
    )
    def property_holds(batch, purchase_now, first, length, group_by, rebuild_now):
        for spec in batch:
            submit(database, spec, versions)
        if purchase_now is not None:
            record_purchase(database, purchase_now)  # responses naming it move to its product
        rollups, counts = recomputed(database)
        assert stored_rollups(database) == rollups
        assert stored_rollups(database, SurveyRollup) == {}  # no longer written: nothing reads it
        assert stored_counts(database) == counts
        # Each answer counts as the kind its question has in the version answered.
        for (_span, _dimension, _day, _value, template_id, key, kind), _sums in rollups.items():
            assert any(v[0] == template_id and kind_in(v, key) == kind for v in versions.values()), (key, kind)
        if rebuild_now:  # the rebuild writes the same rows again (it is idempotent)
            rebuild.rebuild_rollups(database)
            assert stored_rollups(database) == rollups
        # A query over any range (whole weeks from week rows, the rest from day rows) sums its days.
        start = (START + timedelta(days=first)).date()
        query = views.MetricsQuery(start, start + timedelta(days=length), group_by, None, 1)
        with UnitOfWork(database, source="surveys", read_only=True) as uow:
            read = views.read_rollups(uow, query)
        assert as_tuples(read) == as_tuples(summed_days(rollups, query))

    def kind_in(version, key):
        name = next(name for name, made in versions.items() if made == version)
        asked = VERSIONS.get(name, domain.DEFAULT_QUESTIONS)
        return next((q["kind"] for q in asked if q["key"] == key), None)

    property_holds()


def summed_days(rollups: dict, query) -> dict:
    """What a query must find: the day rows of its range, summed per (period, group, question)."""
    dimension = query.attribute_dimension or "all"
    result: dict = {}
    for (span, row_dimension, day, value, template, key, kind), (n, total, squares, counts) in rollups.items():
        if span != "day" or row_dimension != dimension or not query.start.isoformat() <= day <= query.end.isoformat():
            continue
        period = {"day": day, "week": domain.week_of(day), None: None}[query.time_dimension]
        group = (period, value if query.attribute_dimension else None)
        sums = result.setdefault(group, {}).setdefault((template, key, kind), domain.Sums())
        sums.merge(domain.Sums(n, total, squares, list(counts)))
    return result


def as_tuples(read: dict) -> dict:
    return {
        (group, question): (sums.n, sums.total, sums.squares, sums.counts)
        for group, questions in read.items()
        for question, sums in questions.items()
        if sums.n
    }


def test_a_range_is_covered_by_whole_weeks_and_the_days_around_them():
    monday, sunday = date(2026, 11, 2), date(2026, 11, 29)
    assert views.rollup_spans(monday, sunday, by_day=False) == [("week", monday, date(2026, 11, 23))]
    wednesday, friday = date(2026, 11, 4), date(2026, 11, 27)
    assert views.rollup_spans(wednesday, friday, by_day=False) == [
        ("week", date(2026, 11, 9), date(2026, 11, 16)),
        ("day", wednesday, date(2026, 11, 8)),
        ("day", date(2026, 11, 23), friday),
    ]
    assert views.rollup_spans(wednesday, date(2026, 11, 10), by_day=False) == [("day", wednesday, date(2026, 11, 10))]
    assert views.rollup_spans(monday, sunday, by_day=True) == [("day", monday, sunday)]
