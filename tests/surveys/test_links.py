"""Web-link surveys: signed, expiring, single use."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from services.surveys.models import SurveyLink
from shared.problems import PROBLEM_JSON
from tests.support.auth import signed_client
from tests.surveys.conftest import ANSWERS, make_surveys_app
from tests.surveys.test_api import published


def issue(client, **overrides):
    body = {"customer_id": str(uuid.uuid4()), "language": "de", "agent_id": "agent-3", **overrides}
    response = client.post("/links", json=body)
    assert response.status_code == 201, response.json
    return response.json


def test_a_link_shows_its_questions_and_answers_once(client, database):
    entry_id = str(uuid.uuid4())
    link = issue(client, entry_id=entry_id)
    assert link["url"].endswith(f"/links/{link['token']}")
    survey = client.get(f"/links/{link['token']}").json
    assert survey["language"] == "de" and survey["scale"] == {"min": 1, "max": 10}
    assert survey["questions"][0] == {
        "key": "product",
        "text": "Wie gut hat das Produkt Ihre Erwartungen erfüllt?",
        "required": True,
    }
    answered = client.post(f"/links/{link['token']}", json={"answers": ANSWERS, "comment": "Gut"})
    assert answered.status_code == 201 and answered.json["status"] == "complete"
    (event,) = published(database, "survey.completed")
    assert (event.data["channel"], event.data["entry_id"], event.data["agent_id"]) == ("link", entry_id, "agent-3")
    assert event.data["response_id"] == answered.json["response_id"]

    again = client.post(f"/links/{link['token']}", json={"answers": ANSWERS})
    assert again.status_code == 409 and again.content_type == PROBLEM_JSON
    assert client.get(f"/links/{link['token']}").status_code == 409
    assert len(published(database, "survey.completed")) == 1


def test_an_expired_link_is_refused_with_410(client, database):
    link = issue(client)
    with database.engine.begin() as connection:
        connection.execute(
            update(SurveyLink)
            .where(SurveyLink.link_id == link["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert client.get(f"/links/{link['token']}").status_code == 410
    refused = client.post(f"/links/{link['token']}", json={"answers": ANSWERS})
    assert refused.status_code == 410 and refused.content_type == PROBLEM_JSON
    assert published(database) == []


def test_a_tampered_or_foreign_token_is_refused_with_404(client, database_factory, broker_url):
    link = issue(client)
    token = link["token"]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(f"/links/{tampered}").status_code == 404
    other, _ = make_surveys_app(database_factory, broker_url, SURVEY_LINK_SECRET="another-secret")
    assert other.test_client().get(f"/links/{token}").status_code == 404


def test_invalid_answers_through_a_link_are_named_and_do_not_spend_it(client):
    link = issue(client)
    bad = client.post(f"/links/{link['token']}", json={"answers": {**ANSWERS, "service": 0}})
    assert bad.status_code == 422 and bad.json["errors"][0]["pointer"] == "#/answers/service"
    assert client.post(f"/links/{link['token']}", json={"answers": ANSWERS}).status_code == 201


def test_no_links_without_a_secret(database_factory, broker_url):
    app, _ = make_surveys_app(database_factory, broker_url, SURVEY_LINK_SECRET="")
    response = signed_client(app).post("/links", json={"customer_id": str(uuid.uuid4())})
    assert response.status_code == 503 and "SURVEY_LINK_SECRET" in response.json["detail"]


def test_a_link_expiry_must_be_sensible(client):
    response = client.post("/links", json={"customer_id": str(uuid.uuid4()), "expires_in": 5})
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "expires_in"


def test_a_retried_link_issue_with_the_same_idempotency_key_issues_one_link(client, database):
    body = {"customer_id": str(uuid.uuid4())}
    first = client.post("/links", json=body, headers={"Idempotency-Key": "link-1"})
    again = client.post("/links", json=body, headers={"Idempotency-Key": "link-1"})
    assert first.status_code == again.status_code == 201
    assert again.json["id"] == first.json["id"] and again.headers.get("Idempotent-Replayed") == "true"
    with database.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(SurveyLink)).scalar_one() == 1
