"""Input no service may answer with a 500 (issue 20): it is refused as the client's mistake, with
a problem+json that says what is wrong, and nothing is stored. These are the shared mechanisms
(``shared.web``, ``shared.problems``), tried on every service's real app."""

from __future__ import annotations

import importlib
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from services.tickets.models import Customer
from shared.config import Settings
from shared.problems import PROBLEM_JSON
from tests.support.auth import signed_client

BACKENDS = ("tickets", "callrouting", "surveys")
# A write route of each service that takes a JSON body.
WRITES = {"tickets": "/customers", "callrouting": "/agents", "surveys": "/templates"}


def make_app(service, database_factory, amqp_url, **overrides):
    database = database_factory.migrated(service)
    settings = replace(Settings.from_env(service), database_url=database.url, amqp_url=amqp_url, **overrides)
    return importlib.import_module(f"services.{service}.app").create_app(settings)


@pytest.fixture
def tickets(database_factory, broker_url):
    return signed_client(make_app("tickets", database_factory, broker_url))


@pytest.mark.parametrize("service", BACKENDS)
def test_deeply_nested_json_is_a_400_on_every_service(service, database_factory, broker_url):
    client = signed_client(make_app(service, database_factory, broker_url))
    body = "[" * 5000 + "]" * 5000
    response = client.post(WRITES[service], data=body, content_type="application/json")
    assert response.status_code == 400, response.text
    assert response.mimetype == PROBLEM_JSON
    assert "nested too deeply" in response.json["detail"]
    objects = '{"a":' * 5000 + "1" + "}" * 5000
    assert client.post(WRITES[service], data=objects, content_type="application/json").status_code == 400


def test_a_lone_surrogate_is_a_400_and_nothing_is_stored(tickets):
    response = tickets.post("/customers", data='{"name": "a\\ud800b"}', content_type="application/json")
    assert response.status_code == 400, response.text
    assert "surrogate" in response.json["detail"]
    # a pair of escapes that makes one character is text like any other
    paired = tickets.post("/customers", data='{"name": "a\\ud83d\\ude00b"}', content_type="application/json")
    assert paired.status_code == 201, paired.text
    assert paired.json["name"] == "a\U0001f600b"
    with tickets.application.extensions["database"].engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Customer)).scalar_one() == 1


@pytest.mark.parametrize("service", BACKENDS)
def test_a_body_over_the_limit_is_a_413_before_it_is_read(service, database_factory, broker_url):
    client = signed_client(make_app(service, database_factory, broker_url, max_body_bytes=1000))
    body = b'{"name": "' + b"x" * 2000 + b'"}'
    response = client.post(WRITES[service], data=body, content_type="application/json")
    assert response.status_code == 413, response.text
    assert response.mimetype == PROBLEM_JSON
    assert "1000 bytes" in response.json["detail"]


def test_the_default_limit_is_one_megabyte(tickets):
    body = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    assert tickets.post("/customers", data=body, content_type="application/json").status_code == 413


def test_a_500_is_a_problem_too(tickets):
    app = tickets.application

    @app.get("/boom")
    def boom():
        raise ZeroDivisionError("boom")

    response = tickets.get("/boom")
    assert response.status_code == 500
    assert response.mimetype == PROBLEM_JSON
    assert response.json["title"] == "Internal Server Error"
    assert "logged" in response.json["detail"]


def test_a_not_found_says_what_was_not_found(tickets):
    response = tickets.get("/tickets/nope")
    assert response.status_code == 404
    assert response.json["detail"] == "No ticket nope."


def test_every_answer_carries_the_browser_safety_headers(tickets):
    for response in (tickets.get("/customers"), tickets.get("/no/such/thing"), tickets.get("/healthz")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in response.headers, "not over plain HTTP"
    secure = tickets.get("/customers", base_url="https://cc.example.com")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_hsts_behind_a_trusted_https_proxy(database_factory, broker_url):
    client = signed_client(make_app("tickets", database_factory, broker_url, proxy_hops=1))
    response = client.get("/customers", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Strict-Transport-Security" not in client.get("/customers").headers


def test_the_spec_declares_problem_json_for_errors(tickets):
    spec = tickets.get("/openapi.json").json
    default = spec["components"]["responses"]["DEFAULT_ERROR"]
    assert list(default["content"]) == [PROBLEM_JSON]
    unprocessable = [name for name in spec["components"]["responses"] if name.startswith("UNPROCESSABLE")]
    assert unprocessable and all(
        list(spec["components"]["responses"][name]["content"]) == [PROBLEM_JSON] for name in unprocessable
    )


@pytest.mark.parametrize(
    ("service", "method", "path"),
    [
        ("tickets", "PATCH", "/tickets/nope"),
        ("tickets", "PUT", "/sla-policies/urgent"),
        ("callrouting", "PUT", "/queues/0"),
        ("callrouting", "PUT", "/agents/agent-7/state"),
    ],
)
def test_a_put_or_patch_without_a_body_is_a_422_not_a_no_op(service, method, path, database_factory, broker_url):
    client = signed_client(make_app(service, database_factory, broker_url))
    response = client.open(path, method=method)
    assert response.status_code == 422, response.text
    assert response.json["errors"][0]["detail"] == f"A {method} needs a JSON body."
    if service == "callrouting" and path == "/queues/0":
        assert "0" not in [queue["name"] for queue in client.get("/queues").json["items"]], "no queue was created"


@pytest.mark.parametrize("service", BACKENDS)
def test_a_daily_report_for_the_last_representable_day_or_a_huge_page_is_a_4xx(service, database_factory, broker_url):
    client = signed_client(make_app(service, database_factory, broker_url))
    report = client.get("/reports/daily?date=9999-12-31")
    assert 400 <= report.status_code < 500, report.text
    assert report.mimetype == PROBLEM_JSON
    lists = {"tickets": "/tickets", "callrouting": "/calls", "surveys": "/templates"}
    huge = client.get(f"{lists[service]}?page=99999999999999999999")
    assert huge.status_code in (200, 422), huge.text
    if service == "callrouting":  # its lists page by offset: PostgreSQL refuses one past a bigint
        refused = client.get("/calls?offset=99999999999999999999")
        assert refused.status_code == 422 and "offset" in refused.text, refused.text


def test_a_204_carries_no_content_type(tickets):
    app = tickets.application

    @app.post("/nothing")
    def nothing():
        from flask import Response

        return Response(status=204)

    response = tickets.post("/nothing")
    assert response.status_code == 204 and "Content-Type" not in response.headers


def has_zone(text: str) -> bool:
    from datetime import datetime

    return datetime.fromisoformat(text).tzinfo is not None


def test_date_times_carry_their_zone_where_the_spec_says_date_time(database_factory, broker_url):
    """SQLite keeps naive text: surveys' templates and links, and every customer replica's
    updated_at, answered "2026-12-03T12:29:05" where the spec says date-time."""
    surveys = signed_client(make_app("surveys", database_factory, broker_url, options={"SURVEY_LINK_SECRET": "s"}))
    template = surveys.get("/templates").json["items"][0]
    assert has_zone(template["created_at"]), template["created_at"]
    link = surveys.post("/links", json={"customer_id": "3f0c4a57-55a0-4a4e-9a53-5f9c2b0d7e11"})
    assert link.status_code == 201, link.text
    opened = surveys.get(f"/links/{link.json['token']}").json
    assert has_zone(link.json["expires_at"]) and has_zone(opened["expires_at"])

    callrouting = make_app("callrouting", database_factory, broker_url)
    from services.callrouting.models import CustomerReplica

    with callrouting.extensions["database"].sessions() as session:
        session.add(CustomerReplica(customer_id="c-1", name="Ada"))  # updated_at from the server default
        session.commit()
    customer = signed_client(callrouting).get("/customers/c-1").json
    assert has_zone(customer["updated_at"]), customer["updated_at"]


def test_a_huge_page_number_is_a_4xx(tickets):
    for path in ("/tickets", "/customers"):
        response = tickets.get(f"{path}?offset=99999999999999999999")
        assert response.status_code == 422, response.text
