"""Sign-in throttling beyond the account (issue 20): per client address, so one guess at each of
many accounts from one place is slowed too, and per unknown user id, like a known account."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.gateway.app import create_app as create_gateway
from tests.gateway.test_sign_in import PASSWORD, MovableClock, make_user


@pytest.fixture
def gateway(settings_factory):
    settings, _database = settings_factory("gateway", proxy_hops=1)
    settings = replace(settings, options={"SIGN_IN_ADDRESS_SLOW_AFTER": "5"})
    app = create_gateway(settings)
    app.extensions["clock"] = MovableClock()
    return app


def from_address(address: str) -> dict:
    return {"headers": {"X-Forwarded-For": address}}


def test_one_guess_at_each_of_many_accounts_from_one_address_is_slowed(gateway):
    client = gateway.test_client()
    make_user(gateway, "agent-1")
    for n in range(5):
        guess = client.post(
            "/auth/sign-in",
            json={"user_id": f"someone-{n}", "password": "wrong password!"},
            **from_address("203.0.113.9"),
        )
        assert guess.status_code == 401
    throttled = client.post(
        "/auth/sign-in", json={"user_id": "agent-1", "password": PASSWORD}, **from_address("203.0.113.9")
    )
    assert throttled.status_code == 429, throttled.get_json()
    assert int(throttled.headers["Retry-After"]) >= 1
    # another address is not slowed by it, and the account itself was never touched
    elsewhere = client.post(
        "/auth/sign-in", json={"user_id": "agent-1", "password": PASSWORD}, **from_address("198.51.100.7")
    )
    assert elsewhere.status_code == 200, elsewhere.get_json()
    # the wait lapses
    gateway.extensions["clock"].advance(2)
    again = client.post(
        "/auth/sign-in", json={"user_id": "agent-1", "password": PASSWORD}, **from_address("203.0.113.9")
    )
    assert again.status_code == 200


def test_an_unknown_id_is_throttled_like_a_known_account(gateway):
    client = gateway.test_client()
    make_user(gateway, "agent-1")
    answers = {}
    for user_id in ("agent-1", "nobody-here"):
        statuses = [
            client.post(
                "/auth/sign-in",
                json={"user_id": user_id, "password": "wrong password!"},
                **from_address(f"192.0.2.{len(answers) + 1}"),
            ).status_code
            for _ in range(4)
        ]
        answers[user_id] = statuses
    assert answers["agent-1"] == answers["nobody-here"] == [401, 401, 401, 429]


def test_the_unauthenticated_sign_in_refuses_deep_json_and_oversized_bodies_with_a_4xx(gateway):
    client = gateway.test_client()
    deep = client.post("/auth/sign-in", data="[" * 5000 + "]" * 5000, content_type="application/json")
    assert deep.status_code == 400 and deep.mimetype == "application/problem+json"
    huge = client.post("/auth/sign-in", data=b"{" + b" " * (2 * 1024 * 1024) + b"}", content_type="application/json")
    assert huge.status_code == 413
    assert huge.headers["X-Frame-Options"] == "DENY" and huge.headers["X-Content-Type-Options"] == "nosniff"
