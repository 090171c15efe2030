"""The surveys HTTP API: templates, responses and their bad input, a customer's history, metrics."""

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from services.surveys import domain
from services.surveys.models import SurveyAnswerRollup, SurveyCount, SurveyResponse
from shared.backbone import outbox
from shared.events import Envelope
from shared.problems import PROBLEM_JSON
from tests.support.auth import signed_client
from tests.surveys.conftest import ANSWERS, figure_of, make_surveys_app, response_body


def published(database, event_type=None) -> list[Envelope]:
    with database.engine.connect() as connection:
        rows = connection.execute(select(outbox.c.envelope).order_by(outbox.c.id)).scalars().all()
    envelopes = [Envelope.from_json(raw.encode()) for raw in rows]
    return [e for e in envelopes if event_type is None or e.type == event_type]


def count(database, table) -> int:
    with database.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


# --- templates ----------------------------------------------------------------------------


def test_the_default_template_holds_the_five_questions_in_english_and_german(client):
    template = client.get(f"/templates/{domain.DEFAULT_TEMPLATE_ID}").json
    assert [q["key"] for q in template["questions"]] == [
        "product",
        "service",
        "purchase",
        "recommend_product",
        "recommend_store",
    ]
    assert template["questions"][0]["texts"]["en"] == "How well did the product meet your expectations?"
    assert all(set(q["texts"]) >= {"en", "de"} for q in template["questions"])
    assert [q["key"] for q in template["questions"] if q["kind"] == "recommend"] == [
        "recommend_product",
        "recommend_store",
    ]
    assert template["scale"] == {"min": 1, "max": 10} and template["version"] == 1


def test_a_new_version_keeps_the_old_one_answerable(client):
    new = {
        "id": domain.DEFAULT_TEMPLATE_ID,
        "name": "Follow-up survey, short",
        "questions": [
            {"key": "product", "texts": {"en": "Product?", "de": "Produkt?"}},
            {"key": "recommend_store", "kind": "recommend", "required": False, "texts": {"en": "Recommend us?"}},
        ],
    }
    created = client.post("/templates", json=new)
    assert created.status_code == 201 and created.json["version"] == 2
    assert client.get(f"/templates/{domain.DEFAULT_TEMPLATE_ID}").json["version"] == 2
    assert client.get(f"/templates/{domain.DEFAULT_TEMPLATE_ID}?version=1").json["version"] == 1

    latest = client.post("/responses", json=response_body(answers={"product": 8}))
    assert latest.status_code == 201 and latest.json["template_version"] == 2
    old = client.post("/responses", json=response_body(template_version=1))
    assert old.status_code == 201 and old.json["template_version"] == 1
    assert client.post("/responses", json=response_body(template_version=3)).status_code == 422


def test_a_template_with_repeated_keys_or_a_bad_kind_is_refused(client):
    repeated = {"name": "x", "questions": [{"key": "a", "texts": {"en": "A"}}, {"key": "a", "texts": {"en": "B"}}]}
    response = client.post("/templates", json=repeated)
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "questions"
    bad_kind = {"name": "x", "questions": [{"key": "a", "kind": "stars", "texts": {"en": "A"}}]}
    response = client.post("/templates", json=bad_kind)
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "questions.0.kind"


# --- responses ----------------------------------------------------------------------------


def test_a_complete_response_is_stored_counted_and_announced(client, database):
    body = response_body(comment="Friendly agent")
    response = client.post("/responses", json=body)
    assert response.status_code == 201, response.json
    assert response.json["status"] == "complete" and response.json["answers"] == ANSWERS
    (event,) = published(database, "survey.completed")
    assert event.data["response_id"] == response.json["id"]
    assert event.data["answers"] == ANSWERS and event.data["agent_id"] == "agent-7"
    assert event.data["call_id"] == body["call_id"] and event.data["comment"] == "Friendly agent"
    assert published(database, "survey.low_score") == [] and response.json["low_questions"] == []
    with database.engine.connect() as connection:
        n = connection.execute(
            select(func.sum(SurveyAnswerRollup.n)).where(
                SurveyAnswerRollup.dimension == "all", SurveyAnswerRollup.span == "day"
            )
        ).scalar_one()
    assert n == 5  # five answers in the day's "all" bucket (and five in its week's)


def test_a_low_score_is_announced_with_its_provenance(client, database):
    entry_id, campaign_id, purchase_id = (str(uuid.uuid4()) for _ in range(3))
    body = response_body(
        answers={**ANSWERS, "recommend_store": 6, "service": 3},
        entry_id=entry_id,
        campaign_id=campaign_id,
        purchase_id=purchase_id,
    )
    response = client.post("/responses", json=body)
    (event,) = published(database, "survey.low_score")
    assert event.data["low_questions"] == ["service", "recommend_store"]
    assert response.status_code == 201 and response.json["low_questions"] == ["service", "recommend_store"]
    assert event.data["response_id"] == response.json["id"]
    assert (event.data["entry_id"], event.data["campaign_id"], event.data["purchase_id"]) == (
        entry_id,
        campaign_id,
        purchase_id,
    )
    assert event.data["customer_id"] == body["customer_id"] and event.data["call_id"] == body["call_id"]


def test_the_low_score_thresholds_come_from_settings(database_factory, broker_url):
    app, database = make_surveys_app(database_factory, broker_url, LOW_SCORE_RECOMMEND_MAX="8")
    signed_client(app).post("/responses", json=response_body(answers={**ANSWERS, "recommend_store": 8}))
    (event,) = published(database, "survey.low_score")
    assert event.data["low_questions"] == ["recommend_store"]


@pytest.mark.parametrize(
    ("answers", "named"),
    [
        ({**ANSWERS, "product": 0}, "product"),
        ({**ANSWERS, "service": 11}, "service"),
        ({**ANSWERS, "purchase": 7.5}, "purchase"),
        ({**ANSWERS, "recommend_product": "ten"}, "recommend_product"),
        ({**ANSWERS, "recommend_store": True}, "recommend_store"),
        ({**ANSWERS, "product": None}, "product"),
        ({k: v for k, v in ANSWERS.items() if k != "service"}, "service"),  # a required answer missing
        ({**ANSWERS, "colour": 5}, "colour"),  # no such question
    ],
)
def test_each_invalid_answer_is_a_422_naming_the_question_and_nothing_is_stored(client, database, answers, named):
    response = client.post("/responses", json=response_body(answers=answers))
    assert response.status_code == 422
    assert response.content_type == PROBLEM_JSON
    assert [(e["field"], e["pointer"]) for e in response.json["errors"]] == [(f"answers.{named}", f"#/answers/{named}")]
    assert count(database, SurveyResponse.__table__) == 0
    assert count(database, SurveyAnswerRollup.__table__) == 0
    assert published(database) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer_id": "not-a-uuid"}, "customer_id"),
        ({"channel": "fax"}, "channel"),
        ({"agent_id": None}, "agent_id"),  # the agent channel names its agent
        ({"answers": [9, 9]}, "answers"),
        ({"template_id": str(uuid.uuid4())}, "template_id"),
    ],
)
def test_bad_provenance_is_a_422_naming_the_field(client, change, field):
    response = client.post("/responses", json=response_body(**change))
    assert response.status_code == 422
    assert field in {error["field"] for error in response.json["errors"]}


@pytest.mark.parametrize("key", ["call_id", "entry_id"])
def test_a_second_submission_for_the_same_call_is_a_409_and_changes_nothing(client, database, key):
    first = response_body(entry_id=str(uuid.uuid4()))
    assert client.post("/responses", json=first).status_code == 201
    before = (count(database, SurveyResponse.__table__), len(published(database)))
    with database.engine.connect() as connection:
        sums_before = connection.execute(select(func.sum(SurveyAnswerRollup.n))).scalar_one()
    second = response_body(answers={**ANSWERS, "product": 1})
    second[key] = first[key]
    again = client.post("/responses", json=second)
    assert again.status_code == 409 and again.content_type == PROBLEM_JSON
    assert (count(database, SurveyResponse.__table__), len(published(database))) == before
    with database.engine.connect() as connection:
        assert connection.execute(select(func.sum(SurveyAnswerRollup.n))).scalar_one() == sums_before


def test_a_retried_post_with_the_same_idempotency_key_stores_one_response(client, database):
    body = response_body()
    first = client.post("/responses", json=body, headers={"Idempotency-Key": "resp-1"})
    again = client.post("/responses", json=body, headers={"Idempotency-Key": "resp-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json["id"] == first.json["id"]
    assert count(database, SurveyResponse.__table__) == 1 and len(published(database)) == 1


def test_a_partial_response_is_stored_and_counted_apart_not_in_the_means(client, database):
    response = client.post("/responses", json=response_body(answers={"product": 2}, partial=True))
    assert response.status_code == 201 and response.json["status"] == "partial"
    assert published(database) == []  # neither completed nor a low score
    assert count(database, SurveyAnswerRollup.__table__) == 0
    report = client.get("/survey-metrics?min_n=1").json
    (group,) = report["groups"]
    assert group["responses"] == {"completed": 0, "partial": 1}
    assert group["questions"] == []


def test_a_product_comes_from_the_purchase_replica(client, database):
    from services.surveys import incoming
    from shared.unit_of_work import UnitOfWork

    purchase_id = str(uuid.uuid4())
    with UnitOfWork(database, source="surveys") as uow:
        incoming.record_purchase(
            uow,
            {
                "purchase_id": purchase_id,
                "customer_id": str(uuid.uuid4()),
                "sku": "KX-1",
                "product": "Kettle X1",
                "purchased_at": "2026-10-24T09:00:00Z",
            },
        )
        uow.commit()
    response = client.post("/responses", json=response_body(purchase_id=purchase_id))
    assert response.json["product"] == "Kettle X1"
    (event,) = published(database, "survey.completed")
    assert event.data["product"] == "Kettle X1"


def test_a_customer_history_lists_responses_and_the_trend_per_question(client):
    customer_id = str(uuid.uuid4())
    first = client.post("/responses", json=response_body(customer_id=customer_id, answers={**ANSWERS, "service": 3}))
    second = client.post("/responses", json=response_body(customer_id=customer_id, answers={**ANSWERS, "service": 9}))
    client.post("/responses", json=response_body())  # somebody else
    listed = client.get(f"/responses?customer_id={customer_id}").json
    assert {r["id"] for r in listed["items"]} == {first.json["id"], second.json["id"]}
    assert (listed["total"], listed["limit"], listed["offset"]) == (2, 50, 0)
    history = client.get(f"/customers/{customer_id}/surveys").json
    assert len(history["recent"]) == 2 and history["response_count"] == 2 and history["recent_limit"] == 200
    service_trend = history["trend"]["service"]
    assert [point["score"] for point in service_trend["points"]] == [3, 9]
    assert (service_trend["first"], service_trend["latest"], service_trend["change"]) == (3, 9, 6)
    assert client.get("/responses?customer_id=nope").status_code == 422


# --- metrics ------------------------------------------------------------------------------


def submit_many(client, scores_by_key_list, **provenance):
    for answers in scores_by_key_list:
        assert client.post("/responses", json=response_body(answers=answers, **provenance)).status_code == 201


def test_metrics_from_the_rollups_against_a_hand_computed_fixture(client):
    # 40 responses: recommend_store 10 x 10, 10 x 9, 8 x 8, 12 x 5 (P = 20, D = 12)
    stores = [10] * 10 + [9] * 10 + [8] * 8 + [5] * 12
    submit_many(client, [{**ANSWERS, "recommend_store": s} for s in stores])
    report = client.get("/survey-metrics").json
    assert report["min_n"] == 30 and report["group_by"] == []
    (group,) = report["groups"]
    figure = figure_of(group, "recommend_store")
    assert figure["n"] == 40 and not figure["withheld"]
    assert figure["distribution"] == [stores.count(s) for s in range(1, 11)]  # counts of 1..10
    mean = sum(stores) / 40
    assert figure["mean"]["value"] == pytest.approx(mean, abs=1e-4)
    sd = (sum((s - mean) ** 2 for s in stores) / 39) ** 0.5
    half = 2.022691 * sd / 40**0.5  # t(0.975, 39) from a table
    assert figure["mean"]["low"] == pytest.approx(mean - half, abs=1e-3)
    assert figure["csat"]["value"] == 0.5
    wilson = domain.wilson_interval(20, 40)
    assert (figure["csat"]["low"], figure["csat"]["high"]) == (round(wilson.low, 4), round(wilson.high, 4))
    assert figure["nps"]["label"] == "1-10 NPS"
    assert figure["nps"]["value"] == pytest.approx(100 * (20 - 12) / 40)
    nps = domain.nps_adjusted_wald(20, 12, 40)
    assert figure["nps"]["moe"] == round(nps.moe, 2)
    assert figure_of(group, "product")["nps"] is None  # NPS only for the recommend questions
    assert group["responses"] == {"completed": 40, "partial": 0}


def test_a_figure_under_min_n_is_withheld_and_flagged(client):
    submit_many(client, [ANSWERS] * 3)
    figure = figure_of(client.get("/survey-metrics").json["groups"][0], "product")
    assert figure["withheld"] and figure["n"] == 3 and figure["mean"] is None and figure["csat"] is None
    figure = figure_of(client.get("/survey-metrics?min_n=3").json["groups"][0], "product")
    assert not figure["withheld"] and figure["mean"]["value"] == 9


def test_metrics_grouped_by_agent_and_channel(client):
    submit_many(client, [{**ANSWERS, "product": 4}] * 2, agent_id="agent-a")
    submit_many(client, [{**ANSWERS, "product": 10}] * 3, agent_id="agent-b")
    groups = client.get("/survey-metrics?group_by=agent&min_n=2").json["groups"]
    means = {g["agent"]: figure_of(g, "product")["mean"]["value"] for g in groups}
    assert means == {"agent-a": 4.0, "agent-b": 10.0}
    groups = client.get("/survey-metrics?group_by=channel,day&min_n=2").json["groups"]
    today = datetime.now(UTC).date().isoformat()
    assert [(g["channel"], g["day"], g["responses"]["completed"]) for g in groups] == [("agent", today, 5)]


def test_the_period_over_period_change_is_tested(client, database):
    # Last month's rollups hold a mean of 5 (n = 40); this month answers 9 (n = 40).
    from services.surveys import responses
    from services.surveys.domain import Provenance
    from shared.unit_of_work import UnitOfWork

    with UnitOfWork(database, source="surveys") as uow:
        for n in range(40):
            responses.submit_response(
                uow,
                domain.LowScoreRule(),
                template_id=domain.DEFAULT_TEMPLATE_ID,
                template_version=None,
                customer_id=str(uuid.uuid4()),
                channel="link",
                answers={**ANSWERS, "product": 5 + n % 2},
                comment=None,
                language="en",
                partial=False,
                provenance=Provenance(),
                now=datetime(2026, 10, 10, tzinfo=UTC),
            )
    with UnitOfWork(database, source="surveys") as uow:
        for n in range(40):
            responses.submit_response(
                uow,
                domain.LowScoreRule(),
                template_id=domain.DEFAULT_TEMPLATE_ID,
                template_version=None,
                customer_id=str(uuid.uuid4()),
                channel="link",
                answers={**ANSWERS, "product": 9 + n % 2},
                comment=None,
                language="en",
                partial=False,
                provenance=Provenance(),
                now=datetime(2026, 11, 10, tzinfo=UTC),
            )
    report = client.get("/survey-metrics?from=2026-11-01&to=2026-11-30").json
    assert report["compared_with"] == {"from": "2026-10-02", "to": "2026-10-31"}
    change = figure_of(report["groups"][0], "product")["change"]
    assert change["previous_n"] == 40 and change["mean"]["delta"] == pytest.approx(4.0)
    assert change["mean"]["significant"] and change["mean"]["p_value"] < 0.001
    assert change["csat"]["delta"] == pytest.approx(1.0) and change["csat"]["significant"]  # 0 of 40 -> 40 of 40
    unchanged = figure_of(report["groups"][0], "service")["change"]
    assert unchanged["mean"]["delta"] == 0 and not unchanged["mean"]["significant"]


@pytest.mark.parametrize(
    "query",
    [
        "group_by=colour",
        "group_by=day,week",
        "group_by=agent,product",
        "from=2026-11-10&to=2026-11-01",
        "from=yesterday",
    ],
)
def test_bad_metrics_queries_are_422s_naming_the_parameter(client, query):
    response = client.get(f"/survey-metrics?{query}")
    assert response.status_code == 422 and response.content_type == PROBLEM_JSON
    assert response.json["errors"][0]["location"] == "query"


def test_prometheus_metrics_keep_their_route(client):
    assert b"http_requests_total" in client.get("/metrics").data


def test_counts_of_completed_and_partial_per_channel(client, database):
    submit_many(client, [ANSWERS] * 2)
    with database.engine.connect() as connection:
        rows = connection.execute(
            select(SurveyCount.value, SurveyCount.count).where(SurveyCount.dimension == "channel")
        ).all()
    assert rows == [("agent", 2)]


def test_concurrent_submissions_for_one_call_store_exactly_one(surveys_app, database):
    from concurrent.futures import ThreadPoolExecutor

    body = response_body()

    def submit(_):
        return signed_client(surveys_app).post("/responses", json=body).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(submit, range(6)))
    assert statuses == [201, 409, 409, 409, 409, 409]
    assert count(database, SurveyResponse.__table__) == 1
    assert len(published(database, "survey.completed")) == 1


# --- figures per template and version (issue 19) ------------------------------------------


def test_templates_sharing_a_key_with_other_kinds_are_never_mixed(client, database):
    # Another template uses "product" for a recommend question, and "recommend_store" for a rating.
    other = {
        "name": "Store visit",
        "questions": [
            {"key": "product", "kind": "recommend", "texts": {"en": "Recommend the product?", "de": "Empfehlen?"}},
            {"key": "recommend_store", "kind": "rating", "texts": {"en": "Rate the store"}},
        ],
    }
    other_id = client.post("/templates", json=other).json["id"]
    customer_id = str(uuid.uuid4())
    submit_many(client, [{**ANSWERS, "product": 5}] * 2, customer_id=customer_id)  # default v1: a rating
    submit_many(client, [{"product": 10, "recommend_store": 3}] * 3, template_id=other_id)
    groups = client.get("/survey-metrics?min_n=1&language=en").json["groups"]
    (group,) = groups
    rating = figure_of(group, "product")
    assert (rating["kind"], rating["versions"], rating["n"], rating["nps"]) == ("rating", [1], 2, None)
    assert rating["mean"] is not None and rating["mean"]["value"] == 5.0  # the other template's 10s are not here
    assert rating["label"] == "How well did the product meet your expectations?"
    recommend = figure_of(group, "product", other_id)
    assert (recommend["kind"], recommend["versions"], recommend["n"]) == ("recommend", [1], 3)
    assert recommend["nps"]["value"] == 100.0 and recommend["label"] == "Recommend the product?"
    assert figure_of(group, "recommend_store", other_id)["nps"] is None  # a rating there
    assert figure_of(group, "recommend_store")["nps"] is not None
    assert len([f for f in group["questions"] if f["key"] == "product"]) == 2
    # One template only, and labels in another language.
    only = client.get(f"/survey-metrics?min_n=1&template_id={other_id}&language=de").json["groups"][0]
    assert [(f["key"], f["kind"]) for f in only["questions"]] == [
        ("product", "recommend"),
        ("recommend_store", "rating"),
    ]
    assert figure_of(only, "product", other_id)["label"] == "Empfehlen?"

    # A later version marks "product" as recommend: the answers given before keep their figures.
    before = figure_of(client.get("/survey-metrics?min_n=1").json["groups"][0], "product")
    marked = {
        "id": domain.DEFAULT_TEMPLATE_ID,
        "name": "Follow-up survey",
        "questions": [{**q, "kind": "recommend"} if q["key"] == "product" else q for q in domain.DEFAULT_QUESTIONS],
    }
    assert client.post("/templates", json=marked).json["version"] == 2
    assert figure_of(client.get("/survey-metrics?min_n=1").json["groups"][0], "product") == before
    low = client.post("/responses", json=response_body(customer_id=customer_id, answers={**ANSWERS, "product": 5}))
    assert low.json["low_questions"] == ["product"]  # low as the recommend question it now is
    group = client.get("/survey-metrics?min_n=1").json["groups"][0]
    assert figure_of(group, "product", kind="rating") == before
    now_recommend = figure_of(group, "product", kind="recommend")
    assert (now_recommend["versions"], now_recommend["n"], now_recommend["nps"]["value"]) == ([2], 1, -100.0)
    # Versions whose question is the same pool together.
    assert figure_of(group, "service")["versions"] == [1, 2] and figure_of(group, "service")["n"] == 3

    # The low-score rule reads the kind of the version answered: 5 is low only for a recommend question.
    assert (
        client.post("/responses", json=response_body(template_version=1, answers={**ANSWERS, "product": 5})).json[
            "low_questions"
        ]
        == []
    )
    assert client.post(
        "/responses", json=response_body(template_id=other_id, answers={"product": 6, "recommend_store": 6})
    ).json["low_questions"] == ["product"]

    # The customer's history labels each answer as the version answered asked it.
    listed = client.get(f"/responses?customer_id={customer_id}").json["items"]
    kinds = [{a["key"]: a["kind"] for a in r["answered"]}["product"] for r in listed]
    assert kinds == ["recommend", "rating", "rating"]  # newest first
    (latest, *_older) = client.get(f"/customers/{customer_id}/survey-summary").json["recent"]
    assert latest["answered"][0] == {
        "key": "product",
        "kind": "recommend",
        "label": domain.DEFAULT_QUESTIONS[0]["texts"][latest["language"]],  # in the language it was asked in
        "score": 5,
    }
    points = client.get(f"/customers/{customer_id}/survey-summary").json["trend"]["product"]["points"]
    assert [(p["template_version"], p["kind"]) for p in points] == [(1, "rating"), (1, "rating"), (2, "recommend")]
