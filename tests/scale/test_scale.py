"""Two replicas of everything on a three-node RabbitMQ cluster and PostgreSQL, under a steady
bounded load through the gateway, while the node leading the queues stops and comes back and one
replica and one consumer of each service are SIGKILLed and restarted (``make test-scale``).

It prints, and fails on: an acknowledged write lost or applied twice by any consumer, an event
of any outbox not applied exactly once by each of its consumers, a 500 (a 503 must carry
Retry-After), a follow-up entry handed to two agents, an agent reserved for two ringing calls,
a screen-pop that does not reach a stream on either gateway replica, and replicas that answer
the customer view or the daily report differently.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from services.callrouting.models import Call
from shared import event_catalog
from shared.backbone import outbox
from shared.config import SERVICES
from shared.db import Database
from tests.callrouting.call_list_support import ALWAYS, load_due_entries
from tests.gateway.test_live import EventStream
from tests.scale.harness import TWILIO_TOKEN, Stack, wait_until
from tests.support.auth import gateway_user
from tests.support.counting import applications

pytestmark = pytest.mark.scale

OUTBOUND_AGENTS = 32
HAND_OUT_ROUNDS = int(os.environ.get("SCALE_HAND_OUT_ROUNDS", "40"))  # per agent: 1,280 hand-outs, 2,560 requests
PRELOADED_ENTRIES = 2_000
RING_BURST = 24  # concurrent ringing calls per round, for 8 fresh available agents
RING_AGENTS_PER_ROUND = 8
WRITERS = 3
DIAL_AGENT = re.compile(r"<Client[^>]*>([^<]+)</Client>")


class Client:
    """Requests through the TLS proxy (or one gateway directly), as a program would make them: every POST
    with an Idempotency-Key, retried with the same key on a 502/503/504 or a broken connection."""

    def __init__(self, base_url: str, token: str, verify, phase: list[str], statuses: Counter):
        self.base_url, self.token, self.verify = base_url, token, verify
        self.phase, self.statuses = phase, statuses
        self.local = threading.local()
        self.lock = threading.Lock()
        self.bad_503 = 0
        self.last_error = None
        self.refusals: Counter = Counter()  # (method, path, status) of every 4xx and 5xx
        self.samples: dict = {}

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def request(self, method, path, *, json_body=None, data=None, headers=None, token=None, attempts=6):
        headers = {"Authorization": f"Bearer {token or self.token}", **(headers or {})}
        if method == "POST" and data is None:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        for _ in range(attempts):
            phase = self.phase[0]
            try:
                response = self.session().request(
                    method,
                    self.base_url + path,
                    json=json_body,
                    data=data,
                    headers=headers,
                    timeout=20,
                    verify=self.verify,
                )
            except requests.RequestException as error:
                self.last_error = error
                self.count(phase, "connection error")
                with self.lock:
                    kind = re.sub(r"[0-9a-f-]{36}|out-\d+|in-[\d-]+", "{id}", path.split("?")[0])
                    self.refusals[(method, kind, type(error).__name__)] += 1
                    self.samples.setdefault((method, kind, type(error).__name__), str(error)[:200])
                time.sleep(0.3)
                continue
            self.count(phase, response.status_code)
            if response.status_code >= 400:
                with self.lock:
                    kind = re.sub(r"[0-9a-f-]{36}|out-\d+|in-[\d-]+", "{id}", path.split("?")[0])
                    self.refusals[(method, kind, response.status_code)] += 1
                    self.samples.setdefault((method, kind, response.status_code), response.text[:200])
            if response.status_code == 503 and "Retry-After" not in response.headers:
                with self.lock:
                    self.bad_503 += 1
            if response.status_code in (502, 503, 504):
                self.last_error = f"{response.status_code} {response.text[:300]}"
                time.sleep(min(float(response.headers.get("Retry-After", "0.3") or 0.3), 1.0))
                continue
            return response
        return None

    def count(self, phase, status) -> None:
        with self.lock:
            self.statuses[(phase, status)] += 1


def ok(response, *statuses, client=None) -> dict:
    assert response is not None, f"no answer after retries: {client and client.last_error}"
    assert response.status_code in (statuses or (200, 201)), (response.status_code, response.text[:500])
    return response.json() if response.content else {}


@pytest.fixture
def stack(tmp_path):
    server = os.environ.get("TEST_DATABASE_URL", "")
    assert server.startswith("postgresql"), "make test-scale runs on PostgreSQL (scripts/with-postgres.sh)"
    stack = Stack(tmp_path)
    try:
        stack.start_cluster()
        stack.create_databases(server)
        stack.plan()
        stack.setup()
        stack.start_balancer()
        stack.start_all()
        yield stack
    finally:
        stack.stop()


def test_two_replicas_of_everything_survive_a_broker_node_and_replicas_dying_under_load(stack):
    timeline = [(time.monotonic(), "started")]
    phase = ["steady"]
    statuses: Counter = Counter()
    gateway_db = Database(stack.database_urls["gateway"])
    callrouting_db = Database(stack.database_urls["callrouting"])
    admin_token = gateway_user(gateway_db, "scale-supervisor", "admin")
    public = f"https://localhost:{stack.public_port}"
    client = Client(public, admin_token, str(stack.certificate), phase, statuses)

    # -- set-up through the gateway ----------------------------------------------------------------
    campaign = ok(
        client.request(
            "POST",
            "/api/callrouting/campaigns",
            json_body={"name": "Follow-up", "delay_days": 0, "calling_window": ALWAYS, "contact_frequency_days": 0},
        ),
        client=client,
    )
    outbound = [f"out-{n:02d}" for n in range(OUTBOUND_AGENTS)]
    for agent_id in outbound:
        ok(client.request("POST", "/api/callrouting/agents", json_body={"id": agent_id, "name": agent_id}))
    load_due_entries(callrouting_db, campaign["id"], PRELOADED_ENTRIES)

    stop = threading.Event()
    acknowledged = defaultdict(list)  # kind -> ids the client saw acknowledged
    ack_lock = threading.Lock()

    def acknowledge(kind, value):
        with ack_lock:
            acknowledged[kind].append(value)

    def writer(n: int):
        i = 0
        while not stop.is_set():
            i += 1
            phone = f"+1415{2 + n}{i:06d}"  # a valid number (an exchange from 2)
            created = client.request(
                "POST", "/api/tickets/customers", json_body={"name": f"Scale {n}-{i}", "phones": [phone]}
            )
            if created is None or created.status_code != 201:
                continue
            customer_id = created.json()["id"]
            acknowledge("customers", (customer_id, phone))
            purchase = client.request(
                "POST",
                f"/api/tickets/customers/{customer_id}/purchases",
                json_body={
                    "sku": "KT-100",
                    "product": "Kettle",
                    "amount": "49.90",
                    "currency": "EUR",
                    "purchased_at": datetime.now(UTC).isoformat(),
                    "source": "webshop",
                    "order_ref": f"S-{uuid.uuid4().hex[:10]}",
                },
            )
            if purchase is not None and purchase.status_code == 201:
                acknowledge("purchases", purchase.json()["id"])
            if i % 2 == 0:
                ticket = client.request(
                    "POST",
                    "/api/tickets/tickets",
                    json_body={"subject": "Lid broken", "category": "complaint", "customer_id": customer_id},
                )
                if ticket is not None and ticket.status_code == 201:
                    acknowledge("tickets", ticket.json()["id"])
            if i % 3 == 0:
                score = 3 if i % 2 else 9  # every other one low: survey.low_score, a recovery ticket
                answers = {"product": score, "service": 8, "purchase": 9, "recommend_product": 9, "recommend_store": 8}
                response = client.request(
                    "POST",
                    "/api/surveys/responses",
                    json_body={
                        "customer_id": customer_id,
                        "channel": "agent",
                        "agent_id": "out-00",
                        "answers": answers,
                    },
                )
                if response is not None and response.status_code == 201:
                    acknowledge("survey_responses", response.json()["id"])
            time.sleep(0.05)

    hand_outs: dict[str, list[str]] = defaultdict(list)

    def agent_at_work(agent_id: str):
        while len(hand_outs[agent_id]) < HAND_OUT_ROUNDS and not (stop.is_set() and phase[0] == "drain"):
            answer = client.request("POST", f"/api/callrouting/agents/{agent_id}/next-call")
            if answer is None or answer.status_code == 204:
                time.sleep(0.2)
                continue
            if answer.status_code != 200:
                continue
            entry_id = answer.json()["entry"]["id"]
            if hand_outs[agent_id][-1:] != [entry_id]:  # the same entry again is a renewed lease
                hand_outs[agent_id].append(entry_id)
            client.request(
                "POST",
                f"/api/callrouting/entries/{entry_id}/outcome",
                json_body={"agent_id": agent_id, "outcome": "reached"},
            )

    validator = RequestValidator(TWILIO_TOKEN)
    dials: dict[str, list[str]] = {}  # call id -> agents its <Dial> named
    ring_statuses: Counter = Counter()
    ring_round = [0]

    def ring(call_id: str, caller: str, session=None, queue: str | None = None) -> requests.Response | None:
        url = f"{public}/webhooks/twilio/voice" + (f"?queue={queue}" if queue else "")
        params = {"CallSid": call_id, "From": caller, "To": "+14155550199", "CallStatus": "ringing"}
        headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
        try:
            return (session or requests).post(
                url, data=params, headers=headers, verify=str(stack.certificate), timeout=20
            )
        except requests.RequestException:
            return None

    def make_available(agent_id: str, queue: str) -> None:
        if client.request("POST", "/api/callrouting/agents", json_body={"id": agent_id, "name": agent_id}):
            routing = {"endpoint_kind": "client", "endpoint": agent_id, "queues": [queue]}
            client.request("PUT", f"/api/callrouting/agents/{agent_id}/routing", json_body=routing)
            client.request("PUT", f"/api/callrouting/agents/{agent_id}/state", json_body={"state": "available"})

    def ringer():
        # Each round a queue of its own and a few fresh agents who serve only it become available;
        # then three times as many calls ring into it at once, racing for them across both replicas.
        # (Reservations are never released here: an agent named by two calls was reserved twice.)
        with ThreadPoolExecutor(RING_BURST) as pool:
            while not stop.is_set() or any(thread.is_alive() for thread in agent_threads):
                ring_round[0] += 1
                queue = f"round-{ring_round[0]}"
                agents = [f"in-{ring_round[0]:03d}-{n}" for n in range(RING_AGENTS_PER_ROUND)]
                client.request("PUT", f"/api/callrouting/queues/{queue}", json_body={})
                list(pool.map(make_available, agents, [queue] * len(agents)))
                calls = ["CA" + uuid.uuid4().hex for _ in range(RING_BURST)]
                callers = [f"+1650{uuid.uuid4().int % 10**7:07d}" for _ in calls]
                answers = list(pool.map(lambda c, f, q=queue: ring(c, f, queue=q), calls, callers))
                for call_id, answer in zip(calls, answers, strict=True):
                    ring_statuses[(phase[0], answer.status_code if answer is not None else "connection error")] += 1
                    if answer is not None and answer.status_code == 200:
                        dials[call_id] = DIAL_AGENT.findall(answer.text)
                time.sleep(0.2)

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(WRITERS)]
    agent_threads = [threading.Thread(target=agent_at_work, args=(a,), daemon=True) for a in outbound]
    threads += agent_threads
    threads.append(threading.Thread(target=ringer, daemon=True))
    for thread in threads:
        thread.start()

    def mark(name):
        phase[0] = name
        timeline.append((time.monotonic(), name))
        print(f"[{timeline[-1][0] - timeline[0][0]:6.1f}s] {name}", flush=True)

    # -- faults under load ----------------------------------------------------------------------
    time.sleep(8)
    leaders = stack.queue_leaders(on_node=1)
    leader = leaders["callrouting.events"]
    node = stack.node_number(leader)
    spread = Counter(leaders.values())
    mark(f"broker node {node} ({leader}, leading {spread[leader]} of {len(leaders)} queues) stopped")
    stack.cluster("stop-node", str(node))
    time.sleep(10)
    mark(f"broker node {node} starting again")
    stack.cluster("start-node", str(node), timeout=180)
    mark("broker node back")
    time.sleep(5)
    mark("replica 1 and consumer 1 of every service SIGKILLed")
    victims = [stack.web[s][0] for s in SERVICES] + [stack.consumers[s][0] for s in SERVICES]
    for victim in victims:
        stack.kill(victim)
    time.sleep(3)
    for victim in victims:
        stack.restart(victim, wait=False)
    for victim in victims:
        if victim.port:
            wait_until(lambda v=victim: _ready(v.url), 120, f"{victim.name} to serve again")
    mark("killed processes restarted")
    time.sleep(8)
    mark("recovered: load stops")
    stop.set()
    for thread in threads:
        if thread.name != "MainThread":
            thread.join(timeout=240 if thread.is_alive() else 0)
    mark("drain")
    stack.check_alive()

    # -- every event of every outbox applied exactly once by each of its consumers ----------------
    databases = {service: Database(stack.database_urls[service]) for service in SERVICES}
    routed = {service: set(event_catalog.consumed_by(service)) for service in SERVICES}

    def outboxes():
        events = {}
        unpublished = 0
        for database in databases.values():
            with database.engine.connect() as connection:
                for row in connection.execute(select(outbox.c.event_id, outbox.c.event_type, outbox.c.published_ts)):
                    events[row.event_id] = row.event_type
                    unpublished += row.published_ts is None
        return events, unpublished

    def applied(service):
        with databases[service].engine.connect() as connection:
            return Counter(
                dict(
                    connection.execute(
                        select(applications.c.event_id, func.count()).group_by(applications.c.event_id)
                    ).all()
                )
            )

    def figures():
        events, unpublished = outboxes()
        rows = {}
        for service in SERVICES:
            expected = {event_id for event_id, kind in events.items() if kind in routed[service]}
            counts = applied(service)
            rows[service] = {
                "sent": len(expected),
                "applied": len(expected & set(counts)),
                "lost": len(expected - set(counts)),
                "doubled": sum(1 for event_id in expected if counts[event_id] > 1),
                "unknown": len(set(counts) - expected),
            }
        return rows, unpublished, events

    def drained():
        rows, unpublished, _ = figures()
        return unpublished == 0 and all(row["lost"] == 0 for row in rows.values())

    try:
        wait_until(drained, 180, "every outbox published and every event applied")
    except AssertionError:
        pass  # the figures below say what is missing
    mark("drained")
    rows, unpublished, events = figures()

    # -- acknowledged writes: in the outbox, so applied by every consumer as counted above ----------
    with databases["tickets"].engine.connect() as connection:
        created = {
            json.loads(envelope)["data"]["customer_id"]
            for (envelope,) in connection.execute(
                select(outbox.c.envelope).where(outbox.c.event_type == "customer.created")
            )
        }
    acknowledged_customers = [customer_id for customer_id, _ in acknowledged["customers"]]
    customers_lost = [c for c in acknowledged_customers if c not in created]

    # -- hand-outs and reservations --------------------------------------------------------------
    every_hand_out = [entry for entries in hand_outs.values() for entry in entries]
    handed_twice = [entry for entry, n in Counter(every_hand_out).items() if n > 1]
    reservations = Counter(agent for agents in dials.values() for agent in agents)
    with callrouting_db.engine.connect() as connection:
        offered = Counter(
            agent for (agents,) in connection.execute(select(Call.offered_to)) for agent in (agents or [])
        )
    reserved_twice = sorted({a for a, n in reservations.items() if n > 1} | {a for a, n in offered.items() if n > 1})

    # -- the figures -----------------------------------------------------------------------------
    print("\nconsumer      sent  applied  lost  doubled  unknown")
    for service, row in rows.items():
        sent, applied_, lost, doubled, unknown = (row[k] for k in ("sent", "applied", "lost", "doubled", "unknown"))
        print(f"{service:<12} {sent:>5} {applied_:>8} {lost:>5} {doubled:>8} {unknown:>8}")
    print(f"outbox rows left unpublished: {unpublished}; events in all outboxes: {len(events)}")
    print("acknowledged: " + ", ".join(f"{kind} {len(ids)}" for kind, ids in acknowledged.items()))
    print(f"acknowledged customers missing from the tickets outbox: {len(customers_lost)}")
    print("client answers by phase and status:")
    order = {name: n for n, (_, name) in enumerate(timeline)} | {"steady": -1}
    for (when, status), n in sorted(statuses.items(), key=lambda item: (order.get(item[0][0], 99), str(item[0][1]))):
        print(f"  {when:<70} {status!s:>18} {n:>6}")
    print(f"503 without Retry-After: {client.bad_503}")
    print("4xx, 5xx and broken connections by request (the first of each):")
    for (method, kind, status), n in sorted(client.refusals.items(), key=str):
        print(f"  {method} {kind} {status}: {n}  {client.samples[(method, kind, status)]!r}")
    print(
        "ringing webhooks by phase and status: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(ring_statuses.items(), key=str))
    )
    print(
        f"hand-outs: {len(every_hand_out)} to {len(hand_outs)} agents, to two agents: {len(handed_twice)}; "
        f"ringing calls {len(dials)} ({sum(1 for a in dials.values() if a)} dialled at once), agents reserved "
        f"{len(offered)} (by the calls' records), reserved for two calls: {len(reserved_twice)}"
    )
    # -- the screen-pop through either gateway replica --------------------------------------------
    screen_pops = {}
    customer_id, phone = acknowledged["customers"][0]
    ok(client.request("PUT", "/api/callrouting/queues/screen-pop", json_body={"required_skills": ["screen-pop"]}))
    for n, replica in enumerate(stack.web["gateway"], 1):
        agent_id = f"pop-{n}"
        token = gateway_user(gateway_db, agent_id, "agent")
        agent = {"id": agent_id, "name": agent_id, "skills": ["screen-pop"]}
        ok(client.request("POST", "/api/callrouting/agents", json_body=agent))
        # A queue of their own that only they may serve: callers still waiting in the default queue
        # are not offered to them, nor their call to the agents of the load.
        routing = {"endpoint_kind": "client", "endpoint": agent_id, "queues": ["screen-pop"]}
        ok(client.request("PUT", f"/api/callrouting/agents/{agent_id}/routing", json_body=routing))
        stream = EventStream(replica.url, {"Authorization": f"Bearer {token}"})
        assert stream.response.status_code == 200
        stream.next("ready", timeout=15)
        ok(client.request("PUT", f"/api/callrouting/agents/{agent_id}/state", json_body={"state": "available"}))
        call_id = "CA" + uuid.uuid4().hex
        answer = ring(call_id, phone, queue="screen-pop")
        assert answer is not None and answer.status_code == 200 and agent_id in answer.text, answer and answer.text
        event = stream.next("call.ringing", timeout=15)
        screen_pops[replica.name] = (event.data["call_id"] == call_id, event.data.get("customer_id") == customer_id)
        stream.close()

    # -- the customer view and the daily report: every replica answers the same --------------------
    views_differ, reports_differ = [], []
    direct = {r.name: Client(r.url, admin_token, True, phase, Counter()) for r in stack.web["gateway"]}
    for customer_id, _ in acknowledged["customers"][:10]:
        answers = [ok(c.request("GET", f"/api/customers/{customer_id}/view")) for c in direct.values()]
        if _stable(answers[0]) != _stable(answers[1]):
            views_differ.append(customer_id)
    today = datetime.now(UTC).date().isoformat()
    reports = [ok(c.request("GET", f"/api/reports/daily?date={today}")) for c in direct.values()]
    if _stable(_without_staffed_so_far(reports[0])) != _stable(_without_staffed_so_far(reports[1])):
        reports_differ.append(today)

    print(f"screen-pops (right call, right customer) per gateway replica: {screen_pops}")
    print(f"customer views that differ between the gateway replicas: {len(views_differ)}")
    print(f"daily reports that differ between the gateway replicas: {len(reports_differ)}")

    assert all(row["lost"] == 0 and row["doubled"] == 0 and row["unknown"] == 0 for row in rows.values()), rows
    assert unpublished == 0
    assert not customers_lost
    assert not [key for key in statuses if key[1] == 500], "a 500 answered"
    assert not [key for key in ring_statuses if key[1] not in (200, 502, 503, 504, "connection error")], ring_statuses
    assert client.bad_503 == 0, "a 503 without Retry-After"
    assert not handed_twice, f"entries handed to two agents: {handed_twice[:5]}"
    assert len(every_hand_out) >= 1000, "the hand-out was not exercised over thousands of requests"
    assert not reserved_twice, f"agents reserved for two ringing calls: {reserved_twice[:5]}"
    assert len(offered) > 0 and len(dials) > len(offered), "the ringing calls did not contend for agents"
    assert screen_pops == {r.name: (True, True) for r in stack.web["gateway"]}
    assert not views_differ and not reports_differ
    assert min(len(acknowledged[k]) for k in ("customers", "purchases", "tickets", "survey_responses")) > 0


VOLATILE = {"generated_at", "as_of", "elapsed_ms", "cached", "cache"}


# Today's staffing counts each agent's time in state up to the moment it is asked, so two answers
# a moment apart differ there by design; every count (calls, tickets, surveys, calls per interval)
# must still be equal.
STAFFED_SO_FAR = {"staffed", "service_level_with_staffed", "agent_hours_staffed", "agents"}


def _without_staffed_so_far(report):
    if isinstance(report, list):  # one report per day asked
        return [_without_staffed_so_far(day) for day in report]
    if isinstance(report, dict) and "staffing" in report:
        return {**report, "staffing": _without(report["staffing"], STAFFED_SO_FAR)}
    return report


def _stable(answer):
    """An answer without what says when or how it was made (not what it says)."""
    return _without(answer, VOLATILE)


def _without(answer, keys: set[str]):
    """``answer`` with the fields named ``keys`` left out, at every depth."""
    if isinstance(answer, dict):
        return {k: _without(v, keys) for k, v in answer.items() if k not in keys}
    if isinstance(answer, list):
        return [_without(v, keys) for v in answer]
    return answer


def _ready(url: str) -> bool:
    try:
        return requests.get(url + "/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False
