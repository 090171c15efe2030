"""The rollups the metrics read equal a full recomputation from the stored responses,
whatever responses arrive in whatever order (a property test on the real database)."""

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.surveys import domain, incoming, responses, views
from services.surveys.domain import Provenance
from services.surveys.models import SurveyCount, SurveyResponse, SurveyRollup
from shared.unit_of_work import UnitOfWork

PRODUCTS = {str(uuid.UUID(int=n + 1)): f"Product {n}" for n in range(3)}
KEYS = [question["key"] for question in domain.DEFAULT_QUESTIONS]
START = datetime(2026, 3, 1, 12, tzinfo=UTC)

answer = st.integers(min_value=1, max_value=10)
a_response = st.fixed_dictionaries(
    {
        "day": st.integers(min_value=0, max_value=20),
        "answers": st.fixed_dictionaries({key: answer for key in KEYS}),
        "partial_keys": st.lists(st.sampled_from(KEYS), unique=True, max_size=4),
        "partial": st.booleans(),
        "agent": st.sampled_from([None, "agent-1", "agent-2"]),
        "campaign": st.sampled_from([None, str(uuid.UUID(int=99))]),
        "purchase": st.sampled_from([None, *PRODUCTS]),
        "channel": st.sampled_from(["agent", "keypad", "link"]),
    }
)


def submit(database, spec) -> None:
    answers = {key: spec["answers"][key] for key in spec["partial_keys"]} if spec["partial"] else spec["answers"]
    with UnitOfWork(database, source="surveys") as uow:
        responses.submit_response(
            uow,
            domain.LowScoreRule(),
            template_id=domain.DEFAULT_TEMPLATE_ID,
            template_version=None,
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


def stored_rollups(database) -> dict:
    with database.engine.connect() as connection:
        rows = connection.execute(select(SurveyRollup)).mappings().all()
    result = {}
    for row in rows:
        if row["n"] == 0:  # a bucket emptied by a move (a purchase arriving late) counts as absent
            continue
        key = (row["span"], row["dimension"], row["day"], row["value"], row["template_id"], row["question"])
        result[key] = (row["n"], row["total"], row["squares"], [row[f"c{score}"] for score in domain.SCALE])
    return result


def recomputed(database) -> tuple[dict, Counter]:
    with database.engine.connect() as connection:
        responses = connection.execute(select(SurveyResponse)).mappings().all()
    complete = [
        {
            "template_id": r["template_id"],
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
    rollups = {
        key: (sums.n, sums.total, sums.squares, sums.counts) for key, sums in domain.recompute_rollups(complete).items()
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
    record_purchase(database, next(iter(PRODUCTS)))  # known before its responses; the others arrive later
    late = list(PRODUCTS)[1:]

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        batch=st.lists(a_response, min_size=1, max_size=12),
        purchase_now=st.sampled_from([None, *late]),
        first=st.integers(min_value=0, max_value=20),
        length=st.integers(min_value=0, max_value=20),
        group_by=st.sampled_from([(), ("week",), ("day", "agent"), ("product",), ("week", "channel")]),
    )
    def property_holds(batch, purchase_now, first, length, group_by):
        for spec in batch:
            submit(database, spec)
        if purchase_now is not None:
            record_purchase(database, purchase_now)  # responses naming it move to its product
        rollups, counts = recomputed(database)
        assert stored_rollups(database) == rollups
        assert stored_counts(database) == counts
        # A query over any range (whole weeks from week rows, the rest from day rows) sums its days.
        start = (START + timedelta(days=first)).date()
        query = views.MetricsQuery(start, start + timedelta(days=length), group_by, None, 1)
        with UnitOfWork(database, source="surveys", read_only=True) as uow:
            read = views.read_rollups(uow, query)
        assert as_tuples(read) == as_tuples(summed_days(rollups, query))

    property_holds()


def summed_days(rollups: dict, query) -> dict:
    """What a query must find: the day rows of its range, summed per (period, group, question)."""
    dimension = query.attribute_dimension or "all"
    result: dict = {}
    for (span, row_dimension, day, value, _template, question), (n, total, squares, counts) in rollups.items():
        if span != "day" or row_dimension != dimension or not query.start.isoformat() <= day <= query.end.isoformat():
            continue
        period = {"day": day, "week": domain.week_of(day), None: None}[query.time_dimension]
        group = (period, value if query.attribute_dimension else None)
        sums = result.setdefault(group, {}).setdefault(question, domain.Sums())
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
