"""``Idempotency-Key`` on POST (shared/idempotency.py), on a real migrated database.

A small app of its own, so the mechanism is tested apart from any service's domain: its
POST announces an event, and the outbox shows how many times it really acted.
"""

import threading
import uuid
from dataclasses import replace

import pytest
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import func, select

from services.tickets.models import MIGRATIONS
from shared.backbone import idempotency_keys, outbox
from shared.config import Settings
from shared.errors import Conflict
from shared.web import create_service_app, unit_of_work
from tests.support.auth import signed_client

things = Blueprint("things", __name__, url_prefix="/things")


class ThingIn(Schema):
    name = fields.String(required=True)
    refuse = fields.Boolean(load_default=False)


@things.route("")
class Things(MethodView):
    @things.arguments(ThingIn)
    @things.response(201)
    def post(self, body):
        with unit_of_work() as uow:
            thing_id = str(uuid.uuid4())
            uow.publish("customer.created", {"customer_id": thing_id, "name": body["name"]})
            if body["refuse"]:
                raise Conflict("refused after writing, inside the transaction")
            uow.commit()
        return {"id": thing_id}, 201, {"Location": f"/things/{thing_id}"}


@pytest.fixture
def app_and_database(database_factory, broker_url):
    database = database_factory.migrated("tickets")
    settings = replace(Settings.from_env("tickets"), database_url=database.url, amqp_url=broker_url)
    app = create_service_app(settings, title="t", migrations=MIGRATIONS, blueprints=[things])
    return app, database


def outbox_rows(database) -> int:
    with database.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(outbox)).scalar_one()


def test_a_retried_post_with_the_same_key_acts_once_and_gets_the_first_answer(app_and_database):
    app, database = app_and_database
    client = signed_client(app)
    first = client.post("/things", json={"name": "a"}, headers={"Idempotency-Key": "k-1"})
    again = client.post("/things", json={"name": "a"}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json == first.json
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert outbox_rows(database) == 1


def test_without_a_key_or_with_another_key_each_post_acts(app_and_database):
    app, database = app_and_database
    client = signed_client(app)
    client.post("/things", json={"name": "a"})
    client.post("/things", json={"name": "a"})
    client.post("/things", json={"name": "a"}, headers={"Idempotency-Key": "k-1"})
    client.post("/things", json={"name": "a"}, headers={"Idempotency-Key": "k-2"})
    assert outbox_rows(database) == 4


def test_the_same_key_with_another_body_is_refused(app_and_database):
    app, database = app_and_database
    client = signed_client(app)
    client.post("/things", json={"name": "a"}, headers={"Idempotency-Key": "k-1"})
    other = client.post("/things", json={"name": "b"}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422
    assert other.mimetype == "application/problem+json"
    assert "different request body" in other.json["detail"]
    assert outbox_rows(database) == 1


def test_a_request_that_failed_inside_its_transaction_leaves_the_key_unspent(app_and_database):
    app, database = app_and_database
    client = signed_client(app)
    refused = client.post("/things", json={"name": "a", "refuse": True}, headers={"Idempotency-Key": "k-1"})
    assert refused.status_code == 409
    assert outbox_rows(database) == 0
    with database.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(idempotency_keys)).scalar_one() == 0


def test_a_malformed_key_is_a_400(app_and_database):
    app, _ = app_and_database
    response = signed_client(app).post("/things", json={"name": "a"}, headers={"Idempotency-Key": "has spaces"})
    assert response.status_code == 400


def test_concurrent_retries_with_one_key_act_once(app_and_database):
    app, database = app_and_database
    statuses = []

    def post():
        response = signed_client(app).post("/things", json={"name": "a"}, headers={"Idempotency-Key": "race"})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outbox_rows(database) == 1
    # the winner and replays answer 201; a retry that overlapped the winner's commit may get 409
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
