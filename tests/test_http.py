"""What every service's HTTP surface promises: problem+json errors, request ids,
health, readiness, metrics and an OpenAPI document."""

import importlib
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from services.tickets.models import Customer
from shared.backbone import outbox
from shared.config import SERVICES, Settings
from shared.events import Envelope
from shared.problems import PROBLEM_JSON
from tests.support.auth import gateway_user, signed_as, signed_client


def make_app(service, database_factory, amqp_url):
    database = database_factory.migrated(service)
    settings = replace(Settings.from_env(service), database_url=database.url, amqp_url=amqp_url)
    return importlib.import_module(f"services.{service}.app").create_app(settings)


@pytest.fixture
def tickets(database_factory, broker_url):
    return signed_client(make_app("tickets", database_factory, broker_url))


def test_invalid_json_is_a_400_problem(tickets):
    response = tickets.post("/customers", data="{oops", content_type="application/json")
    assert response.status_code == 400
    assert response.mimetype == PROBLEM_JSON
    assert response.json["status"] == 400
    assert "not valid JSON" in response.json["detail"]


def test_invalid_fields_are_a_422_problem_naming_each_field(tickets):
    response = tickets.post("/customers", json={"name": "", "phone": "12", "email": "nope"})
    assert response.status_code == 422
    assert response.mimetype == PROBLEM_JSON
    errors = {error["field"]: error for error in response.json["errors"]}
    assert set(errors) == {"name", "phone", "email"}
    assert errors["phone"]["pointer"] == "#/phone"
    assert "E.164" in errors["phone"]["detail"]


def test_a_missing_required_field_and_an_unknown_field_are_both_named(tickets):
    response = tickets.post("/customers", json={"nickname": "Ada"})
    assert response.status_code == 422
    assert {error["field"] for error in response.json["errors"]} == {"name", "nickname"}


def test_a_json_body_that_is_not_an_object_is_a_422(tickets):
    response = tickets.post("/customers", json=["Ada"])
    assert response.status_code == 422
    assert response.mimetype == PROBLEM_JSON


def test_bad_input_stores_nothing(tickets):
    tickets.post("/customers", json={"name": "", "phone": "12"})
    tickets.post("/customers", data="{oops", content_type="application/json")
    with tickets.application.extensions["database"].engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Customer)).scalar_one() == 0
        assert connection.execute(select(func.count()).select_from(outbox)).scalar_one() == 0


def test_an_unknown_route_is_a_404_problem(tickets):
    response = tickets.get("/no/such/thing")
    assert response.status_code == 404
    assert response.mimetype == PROBLEM_JSON
    assert response.json["instance"] == "/no/such/thing"


def test_a_created_customer_can_be_read_back(tickets):
    created = tickets.post("/customers", json={"name": "Ada", "phone": "+4915112345678", "email": "ada@example.org"})
    assert created.status_code == 201
    read = tickets.get(f"/customers/{created.json['id']}")
    assert read.status_code == 200
    assert read.json == created.json


def test_an_unknown_record_is_a_404_problem(tickets):
    response = tickets.get(f"/customers/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.mimetype == PROBLEM_JSON


def test_a_wrong_method_is_a_405_problem(tickets):
    response = tickets.delete("/customers")
    assert response.status_code == 405
    assert response.mimetype == PROBLEM_JSON


def test_the_request_id_is_taken_from_the_caller_and_echoed(tickets):
    response = tickets.get("/healthz", headers={"X-Request-ID": "call-42.a"})
    assert response.headers["X-Request-ID"] == "call-42.a"


def test_a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one(tickets):
    first = tickets.get("/healthz").headers["X-Request-ID"]
    unsafe = tickets.get("/healthz", headers={"X-Request-ID": "x\u2028<script>"}).headers["X-Request-ID"]
    assert first and unsafe and first != unsafe and "<" not in unsafe


def test_the_request_id_is_in_the_problem_body(tickets):
    response = tickets.get("/nowhere", headers={"X-Request-ID": "trace-me"})
    assert response.json["request_id"] == "trace-me"


def test_the_request_id_travels_inside_the_event_the_request_publishes(tickets):
    response = tickets.post("/customers", json={"name": "Ada"}, headers={"X-Request-ID": "req-from-console"})
    assert response.status_code == 201
    with tickets.application.extensions["database"].engine.connect() as connection:
        (raw,) = connection.execute(select(outbox.c.envelope)).one()
    envelope = Envelope.from_json(raw.encode())
    assert envelope.correlation_id == "req-from-console"
    assert envelope.data["customer_id"] == response.json["id"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_is_healthy_ready_measured_and_documented(service, database_factory, broker_url, monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", "scrape-me")
    app = make_app(service, database_factory, broker_url)
    client = app.test_client()
    assert client.get("/healthz").json == {"status": "ok", "service": service}  # no credentials needed
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["checks"] == {"database": "ok", "broker": "ok"}
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer not-the-token"}).status_code == 401
    metrics = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})  # Prometheus' scrape
    assert metrics.status_code == 200
    assert b"http_requests_total" in metrics.data and b"outbox_pending_events" in metrics.data
    assert client.get("/openapi.json").status_code == 401
    spec = client.get("/openapi.json", headers=_credentials(app, service))
    assert spec.status_code == 200 and spec.json["openapi"].startswith("3.")
    assert spec.json["paths"], "the spec documents the service's routes"


def test_readyz_is_503_naming_the_broker_when_it_is_unreachable(database_factory):
    app = make_app("tickets", database_factory, "amqp://guest:guest@127.0.0.1:1/%2F")
    response = signed_client(app).get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == PROBLEM_JSON
    assert response.json["checks"]["database"] == "ok"
    assert response.json["checks"]["broker"].startswith("unavailable")


def test_an_unexpected_error_is_a_500_problem_without_a_stack_trace(database_factory, broker_url):
    app = make_app("tickets", database_factory, broker_url)

    @app.get("/explode")
    def explode():
        raise RuntimeError("secret internals")

    response = signed_client(app).get("/explode")
    assert response.status_code == 500
    assert response.mimetype == PROBLEM_JSON
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 415, 429])
def test_every_error_status_a_route_raises_is_a_problem(status, database_factory, broker_url):
    from flask_smorest import abort

    from shared.errors import Conflict

    app = make_app("tickets", database_factory, broker_url)

    @app.get("/fail")
    def fail():
        if status == 409:
            raise Conflict("The ticket is already closed.")
        abort(status)

    response = signed_client(app).get("/fail")
    assert response.status_code == status
    assert response.mimetype == PROBLEM_JSON
    assert response.json["status"] == status and response.json["title"]
    if status == 409:
        assert response.json["detail"] == "The ticket is already closed."


def _credentials(app, service) -> dict[str, str]:
    """What the service believes: an API token at the gateway, the gateway's signature elsewhere."""
    if service != "gateway":
        return dict(signed_as("tester", "agent"))
    token = gateway_user(app.extensions["database"], "tester")
    return {"Authorization": f"Bearer {token}"}


def test_a_service_without_the_internal_auth_secret_refuses_to_start(database_factory, broker_url, monkeypatch):
    monkeypatch.delenv("INTERNAL_AUTH_SECRET")
    with pytest.raises(RuntimeError, match="INTERNAL_AUTH_SECRET"):
        make_app("tickets", database_factory, broker_url)
