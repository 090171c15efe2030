"""Live updates (GET /api/live): the gateway served over real HTTP, streams read with requests,
fed by the real broker from the real services' outboxes."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import pika
import pytest
import requests
from port_for import get_port

from services.callrouting.models import CustomerReplica
from services.gateway.live_hub import STREAM_BACKLOG, LiveHub, StreamClosed, Subscription, TooManyStreams, hub_of
from services.gateway.live_router import LiveRouter, Notice
from shared.auth import User
from shared.broker import ConfirmedPublisher
from shared.config import PROJECT_ROOT, Settings
from shared.events import Envelope
from tests.callrouting.inbound_support import TOKEN, add_agents, twilio_signature
from tests.gateway.conftest import ServiceServer
from tests.support.auth import gateway_user, signed_as
from tests.support.services import wait_for

SUPERVISOR = signed_as("sup-1", "supervisor")


@dataclass
class Event:
    event: str
    id: str | None
    data: dict
    received: float


class EventStream:
    """An open ``/api/live`` stream; a thread parses it into events as they arrive."""

    def __init__(self, base_url: str, headers: dict):
        self.response = requests.get(f"{base_url}/api/live", headers=headers, stream=True, timeout=(2, 30))
        self.events: queue.Queue[Event] = queue.Queue()
        self.heartbeats = 0
        self.retry: str | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        fields: dict[str, str] = {}
        try:
            for line in self.response.iter_lines(chunk_size=None, decode_unicode=True):
                if line == "":
                    if "event" in fields:
                        data = json.loads(fields.get("data", "null"))
                        self.events.put(Event(fields["event"], fields.get("id"), data, time.monotonic()))
                    fields = {}
                elif line.startswith(":"):
                    self.heartbeats += "heartbeat" in line
                else:
                    name, _, value = line.partition(":")
                    if name == "retry":
                        self.retry = value.strip()
                    else:
                        fields[name] = value.removeprefix(" ")
        except (requests.RequestException, AttributeError, ValueError, OSError):
            pass  # the test closed the stream

    def next(self, *names: str, timeout: float = 10.0) -> Event:
        """The next event (of one of ``names``, skipping others)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AssertionError(f"no {names or 'event'} within {timeout}s") from None
            if not names or event.event in names:
                return event

    def close(self):
        self.response.close()


@dataclass
class Live:
    stack: object
    url: str
    hub: object

    def stream(self, user_id: str, role: str = "agent") -> EventStream:
        stream = EventStream(self.url, self.stack.bearer(user_id, role))
        assert stream.response.status_code == 200
        stream.next("ready")  # the hub is bound: what is published from now on reaches the stream
        return stream

    def post(self, service: str, path: str, body: dict, headers=SUPERVISOR, method="POST") -> dict:
        response = requests.request(method, self.stack.servers[service].url + path, json=body, headers=dict(headers))
        assert response.status_code in (200, 201), response.text
        return response.json()


@pytest.fixture
def live_env(monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)  # call routing's webhooks verify Twilio's signature
    monkeypatch.setenv("LIVE_HEARTBEAT_SECONDS", "0.2")
    monkeypatch.setenv("LIVE_IDLE_SECONDS", "0.3")


@pytest.fixture
def live(live_env, stack):
    server = ServiceServer(stack.gateway)  # the gateway over real HTTP, as the console reaches it
    hub = hub_of(stack.gateway)
    yield Live(stack, server.url, hub)
    hub.close()
    server.stop()


def twilio(live: Live, path: str, params: dict) -> tuple[str, float]:
    """Twilio calls call routing's ``path`` (signed for that URL): its TwiML and when it answered."""
    url = live.stack.servers["callrouting"].url + path
    response = requests.post(url, data=params, headers={"X-Twilio-Signature": twilio_signature(url, params)})
    answered = time.monotonic()
    assert response.status_code == 200, response.text
    return response.text, answered


def ring(live: Live, call_id: str, caller: str) -> tuple[str, float]:
    return twilio(
        live,
        "/webhooks/twilio/voice",
        {"CallSid": call_id, "From": caller, "To": "+14155550199", "CallStatus": "ringing"},
    )


def make_available(live: Live, agent_id: str) -> None:
    live.post("callrouting", f"/agents/{agent_id}/state", {"state": "available"}, signed_as(agent_id), method="PUT")


def test_a_ringing_call_reaches_its_agent_within_one_second_of_the_webhook_and_no_other_agent(live):
    customer = live.post("tickets", "/customers", {"name": "Ada Caller", "phone": "+14155550123"})
    callrouting = live.stack.databases["callrouting"]

    def replicated():
        with callrouting.sessions() as session:
            return session.get(CustomerReplica, customer["id"]) is not None

    wait_for(replicated, what="the customer in call routing")
    add_agents(callrouting, "agent-a", "agent-b")
    make_available(live, "agent-a")  # the only agent free: the call is offered to agent-a
    ringing, elsewhere = live.stream("agent-a"), live.stream("agent-b")
    call_id = "CA" + uuid.uuid4().hex

    twiml, answered = ring(live, call_id, "+14155550123")
    assert "<Dial" in twiml
    event = ringing.next("call.ringing", timeout=5)

    delay = event.received - answered
    print(f"call.ringing reached the agent {delay * 1000:.1f} ms after the webhook answered")
    assert delay < 1.0
    assert event.id
    assert {key: event.data[key] for key in ("call_id", "from_number", "customer_id", "queue", "view_url")} == {
        "call_id": call_id,
        "from_number": "+14155550123",
        "customer_id": customer["id"],
        "queue": "default",
        "view_url": f"/api/customers/{customer['id']}/view",
    }
    assert event.data["view"]["profile"]["name"] == "Ada Caller"  # the screen-pop: the caller's view
    # agent-b's stream is ordered like every other: their own next event comes with no ring before it.
    make_available(live, "agent-b")
    assert elsewhere.next().event == "agent.state"
    ringing.close()
    elsewhere.close()


def test_a_queued_call_rings_the_agent_it_is_offered_to_later_and_an_unknown_caller_has_no_view(live):
    add_agents(live.stack.databases["callrouting"], "agent-a")
    stream = live.stream("agent-a")
    call_id = "CA" + uuid.uuid4().hex
    twiml, _ = ring(live, call_id, "+14155550777")  # nobody is available: the caller waits
    assert "<Enqueue" in twiml

    make_available(live, "agent-a")
    twiml, answered = twilio(live, "/webhooks/twilio/wait", {"CallSid": call_id, "QueueTime": "5"})
    assert "<Leave" in twiml  # agent-a is reserved for the caller
    event = stream.next("call.ringing")
    assert event.received - answered < 1.0
    assert (event.data["call_id"], event.data["from_number"], event.data["customer_id"]) == (
        call_id,
        "+14155550777",
        None,
    )
    assert (event.data["view_url"], event.data.get("view")) == (None, None)
    stream.close()


def test_a_ticket_assigned_reaches_the_new_assignee(live):
    first, second = live.stream("agent-a"), live.stream("agent-b")
    ticket = live.post(
        "tickets", "/tickets", {"subject": "Kettle leaks", "category": "complaint", "assignee_id": "agent-a"}
    )

    created = first.next("ticket.assigned")
    assert created.data["ticket_id"] == ticket["id"]
    assert created.data["subject"] == "Kettle leaks"

    live.post("tickets", f"/tickets/{ticket['id']}", {"assignee_id": "agent-b"}, method="PATCH")
    moved = second.next("ticket.assigned")
    assert (moved.data["ticket_id"], moved.data["previous_assignee_id"], moved.data["assigned_by"]) == (
        ticket["id"],
        "agent-a",
        "sup-1",
    )
    first.close()
    second.close()


def test_a_service_recovery_case_reaches_supervisors_but_not_agents(live):
    supervisor, agent = live.stream("sup-1", "supervisor"), live.stream("agent-a")
    recovery = live.post("tickets", "/tickets", {"subject": "Make it right", "category": "service_recovery"})

    opened = supervisor.next("recovery.opened")
    assert opened.data["ticket_id"] == recovery["id"]
    # The agent's next event is a later one of their own: the recovery case never came before it.
    mine = live.post("tickets", "/tickets", {"subject": "Yours", "category": "question", "assignee_id": "agent-a"})
    following = agent.next()
    assert (following.event, following.data["ticket_id"]) == ("ticket.assigned", mine["id"])
    supervisor.close()
    agent.close()


def test_a_stream_sends_retry_and_heartbeats_ends_when_the_client_goes_away_and_the_idle_hub_lets_go(live):
    stream = live.stream("agent-a")
    assert live.hub.streams_of("agent-a") == 1
    assert stream.response.headers["Content-Type"].startswith("text/event-stream")
    assert stream.response.headers["Cache-Control"] == "no-cache"
    wait_for(lambda: stream.heartbeats >= 2, timeout=5, what="heartbeats")
    assert stream.retry == "3000"

    stream.close()
    # The next heartbeat's write fails; the server closes the stream, which unsubscribes it.
    wait_for(lambda: live.hub.streams_of("agent-a") == 0, timeout=5, what="the stream to end")

    # With no stream open the hub lets go of the broker; the next stream starts it again.
    wait_for(lambda: not live.hub.running, timeout=5, what="the idle hub to stop")
    assert not live.hub.ready.is_set()

    again = live.stream("agent-a")  # waits for "ready": listening again
    ticket = live.post("tickets", "/tickets", {"subject": "Again", "category": "question", "assignee_id": "agent-a"})
    assert again.next("ticket.assigned").data["ticket_id"] == ticket["id"]
    again.close()


def test_beyond_its_limit_of_streams_a_gateway_process_answers_503_until_one_closes(stack, monkeypatch):
    monkeypatch.setenv("LIVE_MAX_STREAMS", "1")
    try:
        first = stack.client.get("/api/live", headers=stack.bearer("agent-a"), buffered=False)
        assert first.status_code == 200
        refused = stack.client.get("/api/live", headers=stack.bearer("agent-b"))
        assert refused.status_code == 503
        assert refused.content_type == "application/problem+json"
        assert refused.headers["Retry-After"] == "5"
        first.close()  # never read: closing the response still frees its place
        again = stack.client.get("/api/live", headers=stack.bearer("agent-b"), buffered=False)
        assert again.status_code == 200
        again.close()
    finally:
        hub_of(stack.gateway).close()


def test_a_full_process_ends_the_users_own_oldest_stream_for_their_newest_page():
    """A page left behind holds its stream until a heartbeat finds the client gone; clicking
    through the console must not lock the user out of live updates meanwhile."""
    hub = LiveHub(Settings.from_env("gateway"), max_streams=2)
    try:
        left_page = hub.subscribe(User("agent-a", "agent"))
        colleague = hub.subscribe(User("agent-b", "agent"))
        newest = hub.subscribe(User("agent-a", "agent"))
        with pytest.raises(StreamClosed):
            while True:
                left_page.next(timeout=0.5)  # the ready notice, if any, then the end
        assert hub.streams_of("agent-a") == 1 and hub.streams_of("agent-b") == 1
        assert not colleague.closed and not newest.closed
        with pytest.raises(TooManyStreams):
            hub.subscribe(User("agent-c", "agent"))  # nobody's own stream to end: refused
    finally:
        hub.close()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}], ids=["anonymous", "forged"])
def test_a_stream_without_a_signed_in_user_is_401(stack, headers):
    response = stack.client.get("/api/live", headers=headers)
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"


# --- who is told what, event by event -------------------------------------------------------


def envelope(event_type: str, **data) -> Envelope:
    return Envelope(type=event_type, data=data, source="test")


def reserved(agent_id: str, call_id: str) -> Envelope:
    return envelope(
        "agent.state_changed",
        agent_id=agent_id,
        old_state="available",
        new_state="reserved",
        reason="offered",
        call_id=call_id,
        changed_at="2026-11-24T09:00:00Z",
    )


def started(call_id: str, agent_id: str | None) -> Envelope:
    return envelope(
        "call.started",
        call_id=call_id,
        from_number="+14155550123",
        to_number=None,
        customer_id=None,
        queue="default",
        agent_id=agent_id,
        started_at="2026-11-24T09:00:00Z",
    )


def rings(deliveries) -> list[tuple[str, str]]:
    return [
        (audience.user_id, notice.data["call_id"]) for audience, notice in deliveries if notice.event == "call.ringing"
    ]


def test_an_agent_state_change_reaches_that_agent_and_every_supervisor_and_no_other_agent():
    deliveries = LiveRouter().route(reserved("agent-a", "CA9"))
    states = [audience for audience, notice in deliveries if notice.event == "agent.state"]
    assert [a.includes(User("agent-a", "agent")) for a in states] == [True, False]
    assert not any(a.includes(User("agent-b", "agent")) for a in states)
    assert any(a.includes(User("sup-1", "supervisor")) for a in states)
    assert any(a.includes(User("root", "admin")) for a in states)


def test_a_call_routed_straight_to_an_agent_rings_once_with_the_callers_number():
    router = LiveRouter()
    first = router.route(reserved("agent-a", "CA1"))  # published first, in the same transaction
    then = router.route(started("CA1", "agent-a"))
    assert rings(first) == []
    assert rings(then) == [("agent-a", "CA1")]
    assert then[0][1].data["from_number"] == "+14155550123"
    assert router.route(started("CA1", "agent-a")) == []  # a duplicate delivery says nothing new


def test_a_queued_call_offered_later_rings_the_agent_at_once_and_every_agent_of_a_ring_all():
    router = LiveRouter()
    router.route(started("CA2", None))  # queued: nobody free
    assert rings(router.route(reserved("agent-a", "CA2"))) == [("agent-a", "CA2")]
    assert rings(router.route(reserved("agent-b", "CA2"))) == [("agent-b", "CA2")]


def test_a_reservation_for_a_call_never_seen_rings_with_the_call_id_after_the_grace():
    router = LiveRouter(grace=0.25)
    router.route(reserved("agent-a", "CA3"))
    assert router.overdue(time.monotonic()) == []
    late = router.overdue(time.monotonic() + 1)
    assert rings(late) == [("agent-a", "CA3")]
    assert late[0][1].data == {"call_id": "CA3"}  # the stream asks call routing for the rest


# --- under gunicorn ---------------------------------------------------------------------------


@pytest.fixture
def gunicorn_gateway(settings_factory, tmp_path):
    """The gateway under gunicorn with deploy/gunicorn.conf.py: two gthread workers of four threads."""
    settings, database = settings_factory("gateway")
    port = get_port(None)
    env = {
        **os.environ,
        "SERVICE": "gateway",
        "GATEWAY_PORT": str(port),
        "GATEWAY_DATABASE_URL": database.url,
        "AMQP_URL": settings.amqp_url,
        "WEB_CONCURRENCY": "2",
        "GATEWAY_THREADS": "4",
        "LIVE_HEARTBEAT_SECONDS": "0.2",
        "LOG_LEVEL": "WARNING",
    }
    log = open(tmp_path / "gunicorn.log", "wb")
    command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "services.gateway.app:create_app()"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, timeout=30, interval=0.1, what="gunicorn serving the gateway")
        yield url, settings, database
    finally:
        process.send_signal(signal.SIGQUIT)  # gunicorn's quick shutdown: no waiting out keep-alive connections
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_under_gunicorns_threaded_workers_every_stream_of_an_agent_gets_their_event(gunicorn_gateway):
    url, settings, database = gunicorn_gateway
    headers = {"Authorization": f"Bearer {gateway_user(database, 'agent-a')}"}
    streams = [EventStream(url, headers) for _ in range(3)]  # two workers: each has its own hub and queue
    for stream in streams:
        assert stream.response.status_code == 200
        stream.next("ready")
    ticket_id = str(uuid.uuid4())
    created = Envelope(
        type="ticket.created",
        source="tickets",
        data={
            "ticket_id": ticket_id,
            "number": 7,
            "customer_id": None,
            "subject": "Kettle leaks",
            "category": "complaint",
            "priority": "normal",
            "channel": "phone",
            "status": "new",
            "assignee_id": "agent-a",
            "group": None,
            "call_id": None,
            "survey_response_id": None,
            "first_response_due_at": None,
            "resolution_due_at": None,
            "created_at": "2026-11-24T09:00:00+00:00",
        },
    ).validate()
    publisher = ConfirmedPublisher(settings.amqp_url)
    try:
        publisher.publish(settings.exchange, created.type, created.to_json(), pika.BasicProperties(delivery_mode=2))
    finally:
        publisher.close()

    for stream in streams:
        assert stream.next("ticket.assigned").data["ticket_id"] == ticket_id
        stream.close()


def test_a_stream_too_far_behind_gets_what_it_had_and_then_ends():
    stream = Subscription(LiveHub(Settings.from_env("gateway")), User("agent-a", "agent"))
    for number in range(STREAM_BACKLOG + 1):
        stream.offer(Notice("agent.state", str(number), {}))
    received = [stream.next(timeout=0).id for _ in range(STREAM_BACKLOG)]
    assert received == [str(number) for number in range(STREAM_BACKLOG)]
    with pytest.raises(StreamClosed):
        stream.next(timeout=0)
