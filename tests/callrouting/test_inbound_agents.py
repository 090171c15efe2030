"""Agent states and timers on the service layer and the API: who may change what, wrap-up and
offer timeouts, sticky routing and the strategies on real data, concurrent ringing calls
(never one agent reserved twice), and the inbound events on the real broker."""

import json
import threading
from datetime import timedelta

import pika
import pytest

from services.callrouting.inbound import callbacks, domain, service, views
from services.callrouting.inbound.callbacks import CallbackIn
from services.callrouting.inbound.service import InboundConfig
from services.callrouting.models import CustomerReplica, CustomerReplicaPhone
from shared.models import utcnow
from shared.unit_of_work import UnitOfWork
from tests.callrouting.inbound_support import DAY, add_agents, agent_state, inbound_app, make_available, phone_event
from tests.support.services import Running, wait_for

CONFIG = InboundConfig(missed_offers_limit=3, offer_timeout_seconds=30)


@pytest.fixture
def inbound(settings_factory):
    _, client, database = inbound_app(settings_factory)
    return client, database


def uow(database):
    return UnitOfWork(database, "callrouting")


def start(database, call_id, at=DAY, caller=None, queue=None):
    with uow(database) as work:
        return service.start_call(
            work,
            call_id=call_id,
            source="json",
            from_raw=caller,
            to_raw=None,
            queue=queue,
            at=at,
            config=CONFIG,
            now=at,
        )


def report(database, call_id, sequence, kind, at, **fields):
    with uow(database) as work:
        return callbacks.apply_callback(
            work,
            CallbackIn(
                call_id=call_id, record_call_id=call_id, source="json", kind=kind, at=at, sequence=sequence, **fields
            ),
            CONFIG,
            now=at,
        )


def set_state(database, agent_id, state, at=DAY):
    with uow(database) as work:
        service.set_agent_state(work, agent_id, state, CONFIG, now=at)


def offered(decision):
    return [offer.agent_id for offer in decision.offers]


# --- states -----------------------------------------------------------------------------------


def test_an_agent_sets_available_break_and_offline_but_not_the_engines_states(inbound):
    client, database = inbound
    add_agents(database, "ann")
    for state in ("available", "on_break", "offline", "available"):
        response = client.put("/agents/ann/state", json={"state": state})
        assert response.status_code == 200 and response.get_json()["state"] == state
    for state in ("reserved", "on_call", "wrap_up"):
        response = client.put("/agents/ann/state", json={"state": state})
        assert response.status_code == 409 and response.mimetype == "application/problem+json"
    assert client.put("/agents/ann/state", json={"state": "asleep"}).status_code == 422
    assert client.put("/agents/nobody/state", json={"state": "available"}).status_code == 404
    assert agent_state(database, "ann") == "available"


def test_an_agent_offered_a_call_on_a_call_or_in_wrap_up_cannot_walk_away(inbound):
    client, database = inbound
    add_agents(database, "ann")
    make_available(client, "ann")
    phone_event(client, "call.ringing", "J1", 0, DAY)
    assert client.put("/agents/ann/state", json={"state": "offline"}).status_code == 409  # reserved
    phone_event(client, "call.answered", "J1", 1, DAY, agent_id="ann")
    assert client.put("/agents/ann/state", json={"state": "on_break"}).status_code == 409  # on call
    phone_event(client, "call.ended", "J1", 2, DAY + timedelta(seconds=20), agent_id="ann")
    conflict = client.put("/agents/ann/state", json={"state": "available"})
    assert conflict.status_code == 409 and "wrap-up" in conflict.get_json()["detail"]


def test_wrap_up_ends_by_itself_when_its_time_is_up_and_completes_the_call_without_a_reason(inbound):
    _, database = inbound
    add_agents(database, "ann")
    set_state(database, "ann", "available")
    start(database, "J1")
    report(database, "J1", 1, domain.CONNECTED, DAY + timedelta(seconds=3), agent_id="ann")
    ended = DAY + timedelta(seconds=63)
    report(database, "J1", 2, domain.TALK_ENDED, ended, agent_id="ann")  # wrap-up starts now (30 s by default)
    with uow(database) as work:
        assert callbacks.expire_timers(work, CONFIG, now=ended + timedelta(seconds=29)) == 0
    assert agent_state(database, "ann") == "wrap_up"
    with uow(database) as work:
        assert callbacks.expire_timers(work, CONFIG, now=ended + timedelta(seconds=31)) == 1
        work.commit()
    assert agent_state(database, "ann") == "available"
    with uow(database) as work:
        call = views.find_call(work, "J1")
        assert (call.state, call.reason, call.wrap_up_seconds) == ("completed", None, 30)


def test_the_wrap_up_time_is_the_queues_and_the_live_view_applies_it(inbound):
    client, database = inbound
    add_agents(database, "ann")
    client.put("/queues/default", json={"wrap_up_seconds": 1})
    make_available(client, "ann")
    phone_event(client, "call.ringing", "J1", 0, DAY)
    phone_event(client, "call.answered", "J1", 1, DAY, agent_id="ann")
    phone_event(client, "call.ended", "J1", 2, DAY + timedelta(seconds=5), agent_id="ann")
    assert client.get("/live").get_json()["agents_by_state"]["wrap_up"] == 1
    wait_for(
        lambda: client.get("/live").get_json()["agents_by_state"]["available"] == 1, timeout=5, what="wrap-up to end"
    )
    assert client.get("/calls/J1").get_json()["state"] == "completed"


def test_an_offer_nobody_reports_on_expires_as_a_missed_offer_and_the_call_goes_back_to_the_queue(inbound):
    _, database = inbound
    add_agents(database, "ann", "bob")
    set_state(database, "ann", "available", DAY - timedelta(minutes=5))
    assert offered(start(database, "J1")) == ["ann"]
    with uow(database) as work:
        callbacks.expire_timers(work, CONFIG, now=DAY + timedelta(seconds=31))
        work.commit()
    assert agent_state(database, "ann") == "available"
    with uow(database) as work:
        assert views.find_call(work, "J1").state == "queued"
        assert service.agent_routing(work.session, "ann").missed_offers == 1


# --- routing on real data ---------------------------------------------------------------------


def test_a_returning_caller_gets_the_agent_who_helped_them_last_when_that_agent_is_free(inbound):
    _, database = inbound
    add_agents(database, "ann", "bob")
    with database.sessions() as session:
        session.add(
            CustomerReplica(customer_id="0b7c3f0e-1111-4a4a-9c9c-000000000001", name="Ada", phone="+4915112345678")
        )
        session.add(CustomerReplicaPhone(phone="+4915112345678", customer_id="0b7c3f0e-1111-4a4a-9c9c-000000000001"))
        session.commit()
    set_state(database, "bob", "available", DAY - timedelta(minutes=1))
    first = start(database, "J1", caller="+49 151 12345678")
    assert offered(first) == ["bob"] and first.call.customer_id == "0b7c3f0e-1111-4a4a-9c9c-000000000001"
    report(database, "J1", 1, domain.CONNECTED, DAY + timedelta(seconds=2), agent_id="bob")
    report(database, "J1", 2, domain.TALK_ENDED, DAY + timedelta(seconds=60), agent_id="bob")
    with uow(database) as work:
        callbacks.wrap_up(
            work, "J1", reason="question", notes=None, ticket_id=None, config=CONFIG, now=DAY + timedelta(seconds=70)
        )
    set_state(database, "ann", "available", DAY - timedelta(hours=1))  # ann has been idle far longer
    later = DAY + timedelta(minutes=5)
    assert offered(start(database, "J2", at=later, caller="+4915112345678")) == ["bob"]
    assert offered(start(database, "J3", at=later, caller="+14155550100")) == ["ann"]


def test_round_robin_takes_turns_across_calls(inbound):
    client, database = inbound
    add_agents(database, "a1", "a2", "a3")
    client.put("/queues/default", json={"strategy": "round_robin"})
    turns = []
    for n in range(6):
        for agent_id in ("a1", "a2", "a3"):
            if agent_state(database, agent_id) == "reserved":  # the last offer was missed: free them again
                report(database, f"J{n - 1}", 1, domain.OFFER_CANCELED, DAY, agent_id=agent_id)
            if agent_state(database, agent_id) != "available":
                set_state(database, agent_id, "available")
        turns += offered(start(database, f"J{n}"))
    assert turns == ["a1", "a2", "a3", "a1", "a2", "a3"]


def test_skills_and_queues_decide_who_may_take_a_call(inbound):
    client, database = inbound
    add_agents(database, "generalist")
    add_agents(database, "german", skills=["de"])
    client.put(
        "/agents/generalist/routing", json={"endpoint_kind": "client", "endpoint": "generalist", "queues": ["sales"]}
    )
    client.put("/queues/support", json={"required_skills": ["de"]})
    make_available(client, "generalist", "german")
    assert offered(start(database, "J1", queue="support")) == ["german"]
    assert offered(start(database, "J2", queue="sales")) == ["generalist"]
    assert start(database, "J3", queue="support").queued


# --- concurrency ------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["longest_idle", "ring_all", "random"])
def test_calls_ringing_at_once_never_reserve_the_same_agent(settings_factory, strategy):
    _, client, database = inbound_app(settings_factory)
    agents = [f"agent{n:02d}" for n in range(8)]
    add_agents(database, *agents)
    client.put("/queues/default", json={"strategy": strategy})
    make_available(client, *agents)
    threads_count = 24
    barrier = threading.Barrier(threads_count)
    decisions, errors = [], []

    def ring(n):
        barrier.wait()
        try:
            decisions.append(start(database, f"C{n:02d}", at=DAY + timedelta(milliseconds=n)))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=ring, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    reservations = [agent_id for decision in decisions for agent_id in offered(decision)]
    assert len(reservations) == len(set(reservations)) == len(agents)  # every agent once, none twice
    ringing = [decision for decision in decisions if decision.offers]
    if strategy == "ring_all":  # a call rings every agent no other call had reserved first
        assert 1 <= len(ringing) <= len(agents)
    else:
        assert len(ringing) == len(agents)
    assert all(agent_state(database, agent_id) == "reserved" for agent_id in agents)


# --- events on the broker ---------------------------------------------------------------------


def test_the_inbound_events_reach_the_real_broker(settings_factory, amqp_url):
    settings, database = settings_factory("callrouting")
    running = Running()
    try:
        relay = running.relay(database, settings)
        wait_for(relay.ready.is_set, what="the relay")
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        probe = channel.queue_declare("", exclusive=True).method.queue
        for key in ("call.*", "agent.state_changed"):
            channel.queue_bind(probe, settings.exchange, routing_key=key)
        add_agents(database, "ann")
        set_state(database, "ann", "available")
        start(database, "J1")
        report(database, "J1", 1, domain.CONNECTED, DAY + timedelta(seconds=2), agent_id="ann")
        report(database, "J1", 2, domain.TALK_ENDED, DAY + timedelta(seconds=62), agent_id="ann")
        with uow(database) as work:
            callbacks.wrap_up(
                work,
                "J1",
                reason="complaint",
                notes=None,
                ticket_id=None,
                config=CONFIG,
                now=DAY + timedelta(seconds=70),
            )
        start(database, "J2", at=DAY + timedelta(minutes=1))
        report(database, "J2", 1, domain.CALLER_LEFT, DAY + timedelta(minutes=1, seconds=9), explicit_abandon=True)
        received = []

        def drain():
            while (message := channel.basic_get(probe, auto_ack=True))[0] is not None:
                received.append(json.loads(message[2]))
            return {"call.started", "call.answered", "call.completed", "call.abandoned"} <= {
                e["type"] for e in received
            }

        wait_for(drain, what="the call events on the broker")
        completed = next(e for e in received if e["type"] == "call.completed")
        assert (completed["data"]["reason"], completed["data"]["agent_id"], completed["source"]) == (
            "complaint",
            "ann",
            "callrouting",
        )
        assert [e["data"]["new_state"] for e in received if e["type"] == "agent.state_changed"] == [
            "available",
            "reserved",
            "on_call",
            "wrap_up",
            "available",
            "reserved",  # J2 rang ann, and its caller hung up first
            "available",
        ]
        connection.close()
    finally:
        running.close()


def test_the_workers_periodic_job_expires_an_offer_nobody_answered(settings_factory):
    from services.callrouting.worker import JOBS

    settings, database = settings_factory("callrouting", options={"INBOUND_OFFER_TIMEOUT_SECONDS": "0.3"})
    add_agents(database, "ann")
    set_state(database, "ann", "available", utcnow())
    with uow(database) as work:
        decision = service.start_call(
            work, call_id="J1", source="json", from_raw=None, to_raw=None, queue=None, at=None, config=CONFIG
        )
    assert offered(decision) == ["ann"]
    job = JOBS["inbound_timers"]

    def expired():
        job.run(database, settings)
        return agent_state(database, "ann") == "available"

    wait_for(expired, timeout=10, interval=0.1, what="the offer to expire")
    with uow(database) as work:
        assert service.agent_routing(work.session, "ann").missed_offers == 1
