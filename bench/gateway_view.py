"""Gateway scenario (``BENCH_ONLY=gateway_view``): the customer view through the real gateway.

Four gunicorn servers with ``deploy/gunicorn.conf.py`` (2 workers each): tickets, call
routing, surveys, each on its own fresh SQLite database, and the gateway pointed at them
(``*_URL``; every call signed with the run's ``INTERNAL_AUTH_SECRET``). The databases are
loaded by direct inserts: the customer shown has 50 tickets (open, pending, resolved, closed,
two open service-recovery cases, some breached), 5 purchases, 100 calls (60 inbound with
reasons and agents, 40 outbound follow-up attempts) and 3 pending call-list entries, and 20
survey responses; 2,000 other customers with 10 tickets, 10 calls and 2 surveys each share the
tables (so that every read goes through its index). A bench agent and an API token are
created in the gateway's database (``services.gateway.users``).

``GET /api/customers/<id>/view`` (bench/gateway_view.lua adds the bearer token) is measured
on two gateways side by side, one with its view cache off (``VIEW_CACHE_SECONDS=0``: every
view is assembled, the cold path) and one with it on (the default: the same customer's view
asked again and again is a local lookup; both gateway processes listen to the broker and the
answers say ``X-Cache: hit``, checked). No event touches the customer during the run, so
the cached figure is the cost of a hit, not of a mix:

- wrk -t2 -c32: requests/s as a ratio of the bare endpoint measured in the same run
  (target >= 0.25x) and p99, cache off and on;
- wrk -t2 -c2 (one request in flight per gateway worker: the view's own latency, not the
  queue in front of a saturated machine): p99 (target < 100 ms), cache off and on;
- then with the surveys service stopped, on the gateway without cache (a partial view is never
  cached, so with the cache on it is the same path once the last complete view expired): every
  answer is a partial view (checked once: ``missing`` names surveys), p99 at -c2 (target:
  under the deadline, ``VIEW_DEADLINE_SECONDS``, 1 s) and at -c32. Its breaker opens after the
  first failures, so the view does not even wait for a refused connection.

As in the tickets scenario, the latency targets are taken at -c2; the -c32 p99 is the queue in
front of a saturated machine (32 requests in flight / requests per second), shown beside them.
A view is four Flask requests (the gateway's and one per service) and three HTTP client calls:
on this machine even views that did no work would stay far under 0.25x of one bare request.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bench import httpload
from bench.procs import BenchError, say
from bench.report import Row
from bench.tickets import bare_figures, unqueued
from shared.db import Database, migrate

VIEW_LUA = Path(__file__).parent / "gateway_view.lua"
SERVICES = ("tickets", "callrouting", "surveys")
OTHER_CUSTOMERS = 2_000
AGENTS = [f"agent-{n}" for n in range(1, 21)]
REASONS = ("complaint", "question", "order_status", "technical_support", "other")
DEADLINE_S = 1.0
CACHED = ("gateway-cached", "gateway", None)  # server name, service, VIEW_CACHE_SECONDS (None: the default)


def customer_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def phone(n: int) -> str:
    return f"+4930{20000000 + n}"


SHOWN = 0  # the customer the view is asked for; the others are 1..OTHER_CUSTOMERS


# --- data ----------------------------------------------------------------------------------------


def _load_tickets(database: Database, now: datetime, rng: random.Random) -> None:
    from services.tickets.models import Counter, Customer, CustomerPhone, Purchase, Ticket

    customers, phones, tickets, purchases = [], [], [], []
    number = 0
    for n in range(OTHER_CUSTOMERS + 1):
        cid = customer_id(n)
        created = now - timedelta(days=400)
        customers.append(
            {"id": cid, "name": f"Customer {n}", "phone": phone(n), "email": f"c{n}@example.org", "created_at": created}
            | {"time_zone": "Europe/Berlin", "do_not_call": False, "marketing_consent": n % 3 == 0, "segment": "B"}
        )
        phones.append({"customer_id": cid, "phone": phone(n), "position": 0})
        for p in range(5 if n == SHOWN else 1):
            purchases.append(
                {"id": str(uuid.uuid4()), "customer_id": cid, "sku": f"KT-{p}", "product": f"Kettle {p}"}
                | {"amount": "49.90", "currency": "EUR", "purchased_at": now - timedelta(days=30 * p + 1)}
                | {"source": "webshop", "order_ref": f"O-{n}-{p}", "recorded_at": now}
            )
        count = 50 if n == SHOWN else 10
        for t in range(count):
            number += 1
            opened = now - timedelta(hours=(count - t) * 37)
            status = "closed" if t < count * 0.6 else "resolved" if t < count * 0.8 else rng.choice(("new", "open"))
            if n == SHOWN and t in (45, 46):
                status = "pending"
            category = "service_recovery" if n == SHOWN and t in (47, 48) else rng.choice(("question", "complaint"))
            done = status in ("resolved", "closed")
            first_due, resolution_due = opened + timedelta(hours=8), opened + timedelta(days=3)
            tickets.append(
                {
                    "id": str(uuid.uuid4()),
                    "number": number,
                    "customer_id": cid,
                    "subject": f"Ticket {number}: kettle lid leaks",
                    "description": "Water on the counter after boiling.",
                    "category": category,
                    "priority": "urgent" if category == "service_recovery" else rng.choice(("normal", "high")),
                    "channel": "phone",
                    "status": status,
                    "assignee_id": rng.choice(AGENTS),
                    "group": "support",
                    "tags": [],
                    "created_by": "agent-1",
                    "created_at": opened,
                    "updated_at": opened,
                    "first_responded_at": opened + timedelta(hours=2) if done or status == "open" else None,
                    "resolved_at": opened + timedelta(hours=30) if done else None,
                    "closed_at": opened + timedelta(hours=40) if status == "closed" else None,
                    "first_response_due_at": first_due,
                    "resolution_due_at": resolution_due,
                    "pending_since": opened if status == "pending" else None,
                    "paused_seconds": 0.0,
                    "breached": t % 7 == 0,
                    "resolution_breached_at": resolution_due if t % 7 == 0 else None,
                }
            )
    with database.sessions() as session:
        session.execute(insert(Customer), customers)
        session.execute(insert(CustomerPhone), phones)
        session.execute(insert(Purchase), purchases)
        session.execute(insert(Ticket), tickets)
        session.query(Counter).filter(Counter.name == "ticket_number").update({"value": number})
        session.commit()


def _replica_rows(now: datetime) -> list[dict]:
    return [
        {"customer_id": customer_id(n), "name": f"Customer {n}", "phone": phone(n), "email": f"c{n}@example.org"}
        | {"time_zone": "Europe/Berlin", "do_not_call": False, "marketing_consent": False, "segment": "B"}
        | {"as_of": now.isoformat(), "updated_at": now}
        for n in range(OTHER_CUSTOMERS + 1)
    ]


def _load_callrouting(database: Database, now: datetime, rng: random.Random) -> None:
    from services.callrouting.models import Call, CallAttempt, CallEntry, Campaign, CustomerReplica

    campaign_id = str(uuid.uuid4())
    calls, entries, attempts = [], [], []
    for n in range(OTHER_CUSTOMERS + 1):
        cid = customer_id(n)
        inbound, outbound, pending = (60, 40, 3) if n == SHOWN else (6, 4, 0)
        for c in range(inbound):
            received = now - timedelta(hours=(inbound - c) * 11)
            answered = c % 10 != 0
            calls.append(
                {"call_id": f"CA{n:06d}{c:04d}", "source": "twilio", "from_number": phone(n), "to_number": "+4930999"}
                | {"customer_id": cid, "queue": "support", "state": "completed" if answered else "abandoned"}
                | {"offered_to": [], "agent_id": rng.choice(AGENTS) if answered else None, "enqueued_at": received}
                | {"received_at": received, "answered_at": received + timedelta(seconds=20) if answered else None}
                | {"ended_at": received + timedelta(minutes=5), "result": "answered" if answered else "abandoned"}
                | {"wait_seconds": 20.0, "talk_seconds": 280.0 if answered else None}
                | {"reason": rng.choice(REASONS) if answered else None, "notes": "lid leaks" if answered else None}
                | {"offer_round": 1, "day": received.date().isoformat(), "hour": received.hour}
            )
        for e in range(outbound + pending):
            entry_id = str(uuid.uuid4())
            done = e < outbound
            due = now - timedelta(days=outbound - e) if done else now + timedelta(days=e - outbound + 1)
            entries.append(
                {"entry_id": entry_id, "campaign_id": campaign_id, "customer_id": cid}
                | {"schedule_key": f"entry:{entry_id}", "origin": "api", "due_at": due}
                | {"state": "completed" if done else "pending"}
                | {"time_zone": "Europe/Berlin", "shuffle_key": rng.random(), "attempts": 1 if done else 0}
                | {"last_outcome": "reached" if done else None, "created_at": due, "updated_at": due}
            )
            if done:
                attempts.append(
                    {"attempt_id": str(uuid.uuid4()), "entry_id": entry_id, "campaign_id": campaign_id}
                    | {"customer_id": cid, "agent_id": rng.choice(AGENTS), "attempt": 1}
                    | {"outcome": rng.choice(("reached", "no_answer", "voicemail")), "notes": "asked about the lid"}
                    | {"started_at": due, "ended_at": due + timedelta(minutes=4)}
                )
    with database.sessions() as session:
        session.execute(insert(CustomerReplica), _replica_rows(now))
        session.add(
            Campaign(
                campaign_id=campaign_id,
                name="Kettle follow-up",
                purpose="post_purchase",
                delay_days=3,
                talking_point="Ask how the kettle is doing.",
                retry_policy={},
                calling_window={},
                contact_frequency_days=0,
            )
        )
        session.flush()
        session.execute(insert(Call), calls)
        session.execute(insert(CallEntry), entries)
        session.execute(insert(CallAttempt), attempts)
        session.commit()


def _load_surveys(database: Database, now: datetime, rng: random.Random) -> None:
    from services.surveys.domain import DEFAULT_TEMPLATE_ID
    from services.surveys.models import CustomerReplica, SurveyResponse

    keys = ("product", "service", "purchase", "recommend_product", "recommend_store")
    responses = []
    for n in range(OTHER_CUSTOMERS + 1):
        count = 20 if n == SHOWN else 2
        for r in range(count):
            started = now - timedelta(days=(count - r) * 9)
            responses.append(
                {"response_id": str(uuid.uuid4()), "template_id": DEFAULT_TEMPLATE_ID, "template_version": 1}
                | {"customer_id": customer_id(n), "channel": "agent", "status": "complete", "agent_id": AGENTS[r]}
                | {"answers": {key: rng.randint(5, 10) for key in keys}, "comment": None, "language": "en"}
                | {"started_at": started, "completed_at": started + timedelta(minutes=2), "day": str(started.date())}
            )
    with database.sessions() as session:
        session.execute(insert(CustomerReplica), _replica_rows(now))
        session.execute(insert(SurveyResponse), responses)
        session.commit()


def _load_gateway(database: Database, now: datetime) -> str:
    """The replica (with numbers), a bench agent and an API token; returns the token."""
    from services.gateway import users
    from services.gateway.models import CustomerReplica, CustomerReplicaPhone, UserAccount

    with database.sessions() as session:
        session.execute(insert(CustomerReplica), _replica_rows(now))
        session.execute(
            insert(CustomerReplicaPhone),
            [{"phone": phone(n), "customer_id": customer_id(n)} for n in range(OTHER_CUSTOMERS + 1)],
        )
        session.add(
            UserAccount(
                id="bench-agent",
                name="Bench Agent",
                role="agent",
                password_hash=users.hash_password(uuid.uuid4().hex),
                active=True,
                failed_sign_ins=0,
                created_at=now,
                password_changed_at=now,
            )
        )
        session.flush()
        token = users.issue_token(session, "bench-agent", "api", timedelta(hours=2), label="bench")
        session.commit()
    return token


def load(home: Path) -> str:
    """Fresh migrated databases for the four services under ``home``, loaded; the API token."""
    import importlib

    now, rng = datetime.now(UTC), random.Random(11)
    databases = {}
    for service in (*SERVICES, "gateway"):
        database = Database(f"sqlite:///{home / f'{service}.db'}")
        migrate(database, importlib.import_module(f"services.{service}.models").MIGRATIONS)
        databases[service] = database
    try:
        _load_tickets(databases["tickets"], now, rng)
        _load_callrouting(databases["callrouting"], now, rng)
        _load_surveys(databases["surveys"], now, rng)
        return _load_gateway(databases["gateway"], now)
    finally:
        for database in databases.values():
            database.dispose()


# --- the run -------------------------------------------------------------------------------------


def _get_view(url: str, token: str) -> dict:
    return _get(url, token)[0]


def _get(url: str, token: str) -> tuple[dict, str | None]:
    """The view and its ``X-Cache`` header."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read()), response.headers.get("X-Cache")


def _hits(url: str, token: str, whole: dict) -> None:
    """Wait until the cached gateway answers hits (each worker's hub bound, its entry stored)."""
    hits = 0
    deadline = time.monotonic() + 20
    while hits < 20:
        view, cache = _get(url, token)
        if view["partial"] or view["tickets"]["total"] != whole["tickets"]["total"]:
            raise BenchError(f"cached gateway view: not the whole view: missing {view['missing']}")
        hits = hits + 1 if cache == "hit" else 0
        if time.monotonic() > deadline:
            raise BenchError("cached gateway view: no run of hits within 20 s (is the broker reachable?)")
        time.sleep(0.02)


def run(processes, env: dict[str, str], var_dir: Path) -> dict:
    home = var_dir / "gateway-view"
    home.mkdir(parents=True, exist_ok=True)
    say(f"gateway view: loading a customer with 50 tickets, 100 calls, 20 surveys, and {OTHER_CUSTOMERS:,} others")
    token = load(home)

    bare, bare_unqueued = bare_figures(processes, env, "gateway-view-bare")

    servers, urls = {}, {}
    # the gateway without cache (the cold path) and the one with it, on the same services
    for name, service, cache_seconds in (*((s, s, None) for s in SERVICES), ("gateway", "gateway", "0"), CACHED):
        metrics_dir = var_dir / "metrics" / f"gateway-view-{name}"
        metrics_dir.mkdir(parents=True, exist_ok=True)
        server_env = dict(
            env,
            SERVICE=service,
            VAR_DIR=str(home),
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            LOG_LEVEL="WARNING",
            VIEW_DEADLINE_SECONDS=str(DEADLINE_S),
            **{f"{other.upper()}_URL": urls[other] for other in SERVICES if other in urls},
            **({"VIEW_CACHE_SECONDS": cache_seconds} if cache_seconds else {}),
        )
        servers[name], urls[name] = httpload.start_server(
            processes, f"gateway-view-{name}", f"services.{service}.app:create_app()", server_env, "/healthz"
        )
    view_url = f"{urls['gateway']}/api/customers/{customer_id(SHOWN)}/view"
    cached_url = f"{urls[CACHED[0]]}/api/customers/{customer_id(SHOWN)}/view"
    os.environ["BENCH_VIEW_TOKEN"] = token  # for bench/gateway_view.lua (wrk inherits the environment)
    try:
        whole, cache = _get(view_url, token)
        if whole["partial"] or whole["tickets"]["total"] != 50 or whole["surveys"]["total"] != 20:
            raise BenchError(f"gateway view: not the whole view: missing {whole['missing']}")
        calls = whole["calls"]["inbound"]["total"] + whole["calls"]["outbound"]["total"]
        if calls != 100:
            raise BenchError(f"gateway view: {calls} calls instead of 100")
        if cache != "miss":
            raise BenchError(f"gateway view without cache: X-Cache {cache}")
        say(f"gateway view: {len(json.dumps(whole)):,} bytes")
        alone = unqueued("gateway GET /api/customers/<id>/view, cache off", view_url, VIEW_LUA)
        loaded = httpload.measure("gateway GET /api/customers/<id>/view, cache off", view_url, VIEW_LUA)
        # a breaker opened under the load would have made the views partial (and cheap): not a figure
        if (after_load := _get_view(view_url, token))["partial"]:
            raise BenchError(f"gateway view: partial after the load ({after_load['missing']}); figures invalid")

        _hits(cached_url, token, whole)
        cached_alone = unqueued("gateway GET /api/customers/<id>/view, cached", cached_url, VIEW_LUA)
        cached_loaded = httpload.measure("gateway GET /api/customers/<id>/view, cached", cached_url, VIEW_LUA)
        if _get(cached_url, token)[1] != "hit":
            raise BenchError("cached gateway view: a miss after the load; figures invalid")
        processes.stop(servers.pop(CACHED[0]))  # idle from here on: keep its CPU out of what follows

        processes.stop(servers.pop("surveys"))
        partial = _get_view(view_url, token)
        if not partial["partial"] or "surveys" not in partial["missing"] or partial["tickets"]["total"] != 50:
            raise BenchError(f"gateway view without surveys: unexpected {partial['missing']}")
        say(f"gateway view without surveys: missing {partial['missing']}")
        down_alone = unqueued("gateway view, surveys stopped", view_url, VIEW_LUA)
        down_loaded = httpload.measure("gateway view, surveys stopped", view_url, VIEW_LUA)
        after = _get_view(view_url, token)
    finally:
        os.environ.pop("BENCH_VIEW_TOKEN", None)
        for server in servers.values():
            processes.stop(server)

    deadline_ms = DEADLINE_S * 1000
    name = "gateway GET /api/customers/{id}/view"
    rows = []
    for label, c32, c2 in (("cache off", loaded, alone), ("cached", cached_loaded, cached_alone)):
        ratio = c32.requests_per_s / bare.requests_per_s
        rows += [
            Row(
                f"{name}, {label}, -c32",
                "requests/s",
                c32.requests_per_s,
                "req/s",
                bare.requests_per_s,
                "bare",
                ">= 0.25x bare",
                ratio >= 0.25,
            ),
            Row(f"{name}, {label}, -c32", "latency p99", c32.p99_ms, "ms", bare.p99_ms, "bare"),
            Row(
                f"{name}, {label}, -c2",
                "latency p99",
                c2.p99_ms,
                "ms",
                bare_unqueued.p99_ms,
                "bare",
                "< 100",
                c2.p99_ms < 100,
            ),
            Row(f"{name}, {label}, -c2", "latency p50", c2.p50_ms, "ms", bare_unqueued.p50_ms, "bare"),
        ]
    rows += [
        Row(
            f"{name}, surveys stopped, -c2",
            "latency p99",
            down_alone.p99_ms,
            "ms",
            bare_unqueued.p99_ms,
            "bare",
            f"< {deadline_ms:.0f}",
            down_alone.p99_ms < deadline_ms,
        ),
        # no target: at -c32 the figure is the queue in front of the saturated gateway (Little's
        # law: 32 in flight / requests per second), not the view's wait for a missing service
        Row(f"{name}, surveys stopped, -c32", "latency p99", down_loaded.p99_ms, "ms", bare.p99_ms, "bare"),
        Row(
            f"{name}, surveys stopped, -c32",
            "requests/s",
            down_loaded.requests_per_s,
            "req/s",
            bare.requests_per_s,
            "bare",
        ),
    ]
    return {
        "rows": rows,
        "bare": bare.as_dict(),
        "bare_c2": bare_unqueued.as_dict(),
        "view_c2": alone.as_dict(),
        "view_c32": loaded.as_dict(),
        "cached_view_c2": cached_alone.as_dict(),
        "cached_view_c32": cached_loaded.as_dict(),
        "surveys_stopped_c2": down_alone.as_dict(),
        "surveys_stopped_c32": down_loaded.as_dict(),
        "surveys_stopped_missing": after["missing"],
        "view_bytes": len(json.dumps(whole)),
    }
