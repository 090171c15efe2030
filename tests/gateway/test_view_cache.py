"""The per-process cache of complete customer views: hits against the real services (stopped to
prove they are not asked), invalidation by the real events over the real broker, and the race
guard of ``ViewCache`` on its own."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.gateway.live_hub import hub_of
from services.gateway.view_cache import Flight, ViewCache
from tests.gateway.test_view import AGENT, Service, _has, answers, known_everywhere, new_customer
from tests.support.services import wait_for

pytestmark = pytest.mark.db


@pytest.fixture
def gateway(stack):
    """The stack, the gateway's hub closed afterwards (views start it)."""
    yield stack
    hub_of(stack.gateway).close()


def listening(stack):
    """The gateway process's hub, bound to the broker (views are cached only then)."""
    hub = hub_of(stack.gateway)
    hub.use_views()
    wait_for(hub.ready.is_set, timeout=10, what="the hub to bind")
    return hub


def ready_customer(stack) -> str:
    customer_id, _, _ = new_customer(stack)
    known_everywhere(stack, customer_id)
    wait_for(lambda: _has(Service(stack, "surveys"), customer_id), timeout=20, what="the surveys' customer replica")
    return customer_id


def view(stack, customer_id: str):
    response = stack.client.get(f"/api/customers/{customer_id}/view", headers=stack.bearer(AGENT))
    assert response.status_code == 200, response.get_json()
    return response


def test_a_repeated_view_is_a_hit_served_without_asking_any_service(gateway):
    customer_id = ready_customer(gateway)
    listening(gateway)
    first = view(gateway, customer_id)
    assert first.headers["X-Cache"] == "miss" and first.get_json()["partial"] is False

    for server in gateway.servers.values():
        server.stop()  # nobody left to ask: only the cache can answer
    second = view(gateway, customer_id)
    assert second.headers["X-Cache"] == "hit"
    assert second.get_json() == first.get_json()  # the same complete view, generated_at included
    assert second.get_json()["partial"] is False

    # another user (another role) gets the same entry: the view does not depend on who asks
    supervisor = gateway.client.get(f"/api/customers/{customer_id}/view", headers=gateway.bearer("sup-1", "supervisor"))
    assert supervisor.headers["X-Cache"] == "hit" and supervisor.get_json() == first.get_json()


def test_the_lookup_by_number_uses_the_same_cache(gateway):
    customer_id, e164, _ = new_customer(gateway)
    known_everywhere(gateway, customer_id)
    wait_for(lambda: _has(Service(gateway, "surveys"), customer_id), timeout=20, what="the surveys' replica")
    listening(gateway)
    answers_ = []
    for _ in range(2):
        response = gateway.client.get(
            "/api/customers/lookup", query_string={"phone": e164}, headers=gateway.bearer(AGENT)
        )
        assert response.status_code == 200 and response.get_json()["matched_phone"] == e164
        answers_.append(response)
    assert [r.headers["X-Cache"] for r in answers_] == ["miss", "hit"]
    assert answers_[0].get_json() == answers_[1].get_json()


def test_a_new_ticket_and_a_survey_answer_show_as_soon_as_their_events_arrive(gateway):
    # Cached for a minute: only the events can explain a change seen within two seconds.
    gateway.settings["gateway"].options["VIEW_CACHE_SECONDS"] = "60"
    customer_id = ready_customer(gateway)
    listening(gateway)
    assert view(gateway, customer_id).headers["X-Cache"] == "miss"
    assert view(gateway, customer_id).headers["X-Cache"] == "hit"

    ticket = Service(gateway, "tickets")(
        "POST", "/tickets", json={"subject": "Lid leaks", "category": "complaint", "customer_id": customer_id}
    )
    shown = wait_for(
        lambda: (body := view(gateway, customer_id).get_json())["tickets"]["total"] == 1 and body,
        timeout=2,
        what="the new ticket in the view",
    )
    assert shown["tickets"]["open"][0]["id"] == ticket["id"]
    assert view(gateway, customer_id).headers["X-Cache"] == "hit"  # cached again, with the ticket

    response = Service(gateway, "surveys")(
        "POST", "/responses", json={"customer_id": customer_id, "agent_id": AGENT, "answers": answers(9)}
    )
    shown = wait_for(
        lambda: (body := view(gateway, customer_id).get_json())["surveys"]["total"] == 1 and body,
        timeout=2,
        what="the survey answer in the view",
    )
    assert shown["surveys"]["recent"][0]["id"] == response["id"]
    assert shown["tickets"]["total"] == 1


def test_concurrent_views_of_one_customer_ask_each_service_once(gateway):
    # The test is about sharing one fetch, not about the deadline: on a loaded machine the first
    # fetch may outlast the default 1 s, and then the others rightly stop waiting for it and fetch.
    gateway.settings["gateway"].options["VIEW_DEADLINE_SECONDS"] = "10"
    customer_id = ready_customer(gateway)
    listening(gateway)
    asked = []
    server = gateway.servers["tickets"]
    served = server.app

    def counting(environ, start_response):
        asked.append(environ["PATH_INFO"])
        return served(environ, start_response)

    server.app, server.delay = counting, 0.3  # the first fetch is still under way when the others come
    headers = gateway.bearer(AGENT)
    barrier = threading.Barrier(4)

    def one_view(_):
        barrier.wait()
        return gateway.client.get(f"/api/customers/{customer_id}/view", headers=headers)

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(one_view, range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    assert sorted(r.headers["X-Cache"] for r in responses) == ["hit", "hit", "hit", "miss"]
    assert all(r.get_json() == responses[0].get_json() and not r.get_json()["partial"] for r in responses)
    assert asked == [f"/customers/{customer_id}/overview"]


def test_a_partial_view_is_never_cached(gateway):
    customer_id = ready_customer(gateway)
    listening(gateway)
    gateway.servers["surveys"].stop()
    for _ in range(2):
        response = view(gateway, customer_id)
        assert response.headers["X-Cache"] == "miss"
        assert response.get_json()["missing"] == {"surveys": "unreachable"}
    assert len(hub_of(gateway.gateway).views) == 0


def test_zero_seconds_turns_the_cache_off_and_leaves_the_broker_alone(gateway):
    gateway.settings["gateway"].options["VIEW_CACHE_SECONDS"] = "0"
    customer_id = ready_customer(gateway)
    assert [view(gateway, customer_id).headers["X-Cache"] for _ in range(3)] == ["miss"] * 3
    assert not hub_of(gateway.gateway).running  # no view started the hub


def test_nothing_is_cached_while_the_hub_does_not_listen(gateway):
    customer_id = ready_customer(gateway)
    hub = listening(gateway)
    assert view(gateway, customer_id).headers["X-Cache"] == "miss"
    hub.close()  # no events would reach this process: a kept view could go stale unnoticed
    assert not hub.ready.is_set() and len(hub.views) == 0
    assert [view(gateway, customer_id).headers["X-Cache"] for _ in range(2)] == ["miss", "miss"]


def test_views_keep_the_hub_listening_and_it_lets_go_once_they_stop(gateway, monkeypatch):
    # Read when the hub is made. A second, not less: on a busy machine one view may take half of it.
    monkeypatch.setenv("LIVE_IDLE_SECONDS", "1.0")
    customer_id = ready_customer(gateway)
    hub = listening(gateway)
    until = time.monotonic() + 3.0  # three idle periods, with a view every 0.1 s
    while time.monotonic() < until:
        assert view(gateway, customer_id).headers["X-Cache"] in ("miss", "hit")
        assert hub.running and hub.ready.is_set()
        time.sleep(0.1)
    assert len(hub.views) == 1
    wait_for(lambda: not hub.running, timeout=5, what="the idle hub to stop")
    assert len(hub.views) == 0 and not hub.ready.is_set()
    # the next view starts it again; once bound, views are cached again
    view(gateway, customer_id)
    wait_for(hub.ready.is_set, timeout=10, what="the hub to bind again")
    assert [view(gateway, customer_id).headers["X-Cache"] for _ in range(2)] == ["miss", "hit"]


# --- ViewCache on its own ----------------------------------------------------------------------


def test_a_drop_during_a_fetch_keeps_the_fetched_view_out():
    cache = ViewCache()
    began = cache.begin()
    cache.drop(["c1"])  # the customer changed while the (now stale) view was being fetched
    assert cache.store("c1", "stale", began) is False
    assert cache.get("c1", 60) is None
    # a fetch begun after the change stores; another customer's change does not matter
    began = cache.begin()
    cache.drop(["c2"])
    assert cache.store("c1", "fresh", began) is True
    assert cache.get("c1", 60) == "fresh"


def test_a_drop_removes_the_entry_and_a_clear_refuses_every_fetch_begun_before_it():
    cache = ViewCache()
    cache.store("c1", "v1", cache.begin())
    cache.store("c2", "v2", cache.begin())
    cache.drop(["c1", "c3"])
    assert cache.get("c1", 60) is None and cache.get("c2", 60) == "v2"
    began = cache.begin()
    cache.clear()  # the hub bound again: events may have been missed
    assert cache.get("c2", 60) is None
    assert cache.store("c2", "old", began) is False
    assert cache.store("c2", "new", cache.begin()) is True


def test_entries_expire_after_max_age_and_the_least_recently_used_go_first():
    cache = ViewCache(size=2)
    cache.store("a", "A", cache.begin(), now=100.0)
    cache.store("b", "B", cache.begin(), now=100.0)
    assert cache.get("a", 5, now=101.0) == "A"  # "a" used: "b" is now the oldest
    cache.store("c", "C", cache.begin(), now=101.0)
    assert cache.get("b", 5, now=101.0) is None and cache.get("a", 5, now=101.0) == "A"
    assert cache.get("c", 5, now=106.5) is None  # older than max_age
    assert len(cache) == 1


def test_forgotten_drops_raise_the_floor_so_an_older_fetch_still_cannot_store():
    cache = ViewCache(remembered=2)
    began = cache.begin()
    cache.drop(["x"])
    cache.drop(["y"])
    cache.drop(["z"])  # "x" is forgotten: fetches begun before its drop may store nothing
    assert cache.store("x", "stale", began) is False
    assert cache.store("x", "fresh", cache.begin()) is True


def test_one_fetch_per_customer_and_a_drop_lets_the_next_request_start_another():
    cache = ViewCache()
    flight, leader = cache.flight("c1")
    assert leader is True
    assert cache.flight("c1") == (flight, False)  # waits for the same fetch
    assert cache.flight("c2")[1] is True  # another customer: its own
    cache.drop(["c1"])  # c1 changed: the fetch under way may have read the old state
    fresh, leader = cache.flight("c1")
    assert leader is True and fresh is not flight
    cache.land("c1", flight, "old")  # landing the detached one leaves the new one in place
    assert flight.done.is_set() and flight.value == "old"
    assert cache.flight("c1") == (fresh, False)
    error = LookupError("no such customer")
    cache.land("c1", fresh, error=error)
    assert fresh.error is error and cache.flight("c1")[0] not in (flight, fresh)
    assert isinstance(fresh, Flight)


def test_the_spec_documents_the_x_cache_header(stack):
    spec = stack.client.get("/openapi.json", headers=stack.bearer(AGENT)).get_json()
    for path in ("/api/customers/{customer_id}/view", "/api/customers/lookup"):
        headers = spec["paths"][path]["get"]["responses"]["200"]["headers"]
        assert headers["X-Cache"]["schema"]["enum"] == ["hit", "miss"]
