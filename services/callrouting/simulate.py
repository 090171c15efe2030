"""A phone simulator: plays a day of inbound calls through the signed Twilio webhooks, exactly as
Twilio would, and the agents' side (states, wrap-up with a reason) through the API, both through
the gateway, the one door (docs/gateway.md).

    python -m services.callrouting.simulate --token "$CALLCENTER_TOKEN" --calls 200 --speed 600

The gateway is ``--base-url`` (``GATEWAY_URL``, else http://127.0.0.1:``GATEWAY_PORT``, 8000 by
default, as ``make run`` starts it): the webhooks are
at ``/webhooks/...``, the API at ``/api/callrouting/...`` with ``Authorization: Bearer`` and a
supervisor's or admin's API token (``--token`` or ``CALLCENTER_TOKEN``; ``make simulate`` makes
one for the dev admin).

The day runs from 08:00 to 18:00 (UTC) on ``--date`` (today by default), on a simulated clock
that runs ``--speed`` times faster than real time: call times sent to the service (Twilio's
``Timestamp``, ``QueueTime``, ``CallDuration``) are simulated, so the daily report of that date
shows the day as played. Arrivals follow a two-peaked curve (late morning and early
afternoon); callers hang up after an exponential patience (mean 90 s), some within seconds
(short abandons); agents answer an offer after a few seconds or, now and then, not at all;
talks last 1 to 10 minutes, and each ends with a wrap-up and a reason. Today is played up to now
only (never into the future); another day, whole.

Callers: about two thirds are customers on file (their numbers from the tickets API, so a pop
shows a real card), the rest unknown numbers.

Signs with ``TWILIO_AUTH_TOKEN`` (from the environment, else the one ``make run`` generated into
``var/dev-secrets.env``) for the gateway URL it calls (call routing checks the URL the gateway
was called at), or for ``--public-url`` when the services check signatures against
``PUBLIC_BASE_URL``. Agents ``sim-agent-1..N`` are
registered through ``POST /agents`` with the skill ``simulation`` and made available; they stay
available afterwards. The calls ring in the queue ``simulation``, which requires that skill, so
they are offered to the simulator's agents only, never to a person signed in to the console; and
the simulator answers, wraps up and reports only its own agents' legs.
Wrap-up is measured on the service's clock, so after-call work is short at high speeds.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import os
import random
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import requests
from twilio.request_validator import RequestValidator

from shared.config import var_dir
from shared.event_catalog import CALL_REASONS

REASON_WEIGHTS = {
    "question": 30,
    "technical_support": 20,
    "complaint": 12,
    "quality_issue": 8,
    "registration": 10,
    "replacement": 7,
    "refund": 6,
    "other": 7,
}
OPEN_HOUR, CLOSE_HOUR = 8, 18
SIM_QUEUE = SIM_SKILL = "simulation"  # the simulator's own queue, served only by agents with its skill
KNOWN_SHARE = 2 / 3  # of the calls come from customers on file
ENDINGS = ("hang_up", "give_up", "wrap_up")


def arrival_weight(hour: float) -> float:
    """Calls per minute, relatively: peaks at 10:30 and 14:30, quieter at lunch and the ends of the day."""
    return 0.2 + math.exp(-(((hour - 10.5) / 1.2) ** 2)) + 0.8 * math.exp(-(((hour - 14.5) / 1.5) ** 2))


def arrival_times(day: date, count: int, rng: random.Random, until: datetime | None = None) -> list[datetime]:
    """``count`` arrival times over the business day, drawn from the arrival curve; those after
    ``until`` (now, when the day is today) are dropped: the simulator never plays the future."""
    start = datetime(day.year, day.month, day.day, OPEN_HOUR, tzinfo=UTC)
    minutes = (CLOSE_HOUR - OPEN_HOUR) * 60
    weights = [arrival_weight(OPEN_HOUR + minute / 60) for minute in range(minutes)]
    picks = rng.choices(range(minutes), weights=weights, k=count)
    times = sorted(start + timedelta(minutes=minute, seconds=rng.uniform(0, 60)) for minute in picks)
    return [moment for moment in times if until is None or moment <= until]


@dataclass
class SimCall:
    sid: str
    caller: str
    arrived: datetime
    patience: float  # seconds the caller will wait for an answer
    talk: float  # seconds of conversation once answered
    state: str = "new"  # new, queued, ringing, talking, over
    offers: dict[str, str] = field(default_factory=dict)  # agent -> leg sid of the current round
    round: int = 0
    agent: str | None = None


class Simulator:
    def __init__(self, args, token: str, out=sys.stdout):
        self.base = args.base_url.rstrip("/")
        self.api_base = self.base + "/api/callrouting"
        self.public = (args.public_url or args.base_url).rstrip("/")
        self.speed = args.speed
        self.rng = random.Random(args.seed)
        self.day = args.date
        self.validator = RequestValidator(token)
        self.http = requests.Session()
        self.api_headers = {"Authorization": f"Bearer {args.token}"}
        self.agents = [f"sim-agent-{n}" for n in range(1, args.agents + 1)]
        self.events: list = []
        self.order = itertools.count()
        self.sequences: dict[str, itertools.count] = {}
        self.legs = itertools.count(1)
        self.calls: list[SimCall] = []
        self.no_answer_rate = args.no_answer_rate
        self.out = out
        self.counts = {"answered": 0, "abandoned": 0, "wrapped_up": 0, "missed_offers": 0}
        self.now = datetime.now(UTC)

    # -- plumbing --------------------------------------------------------------------------------

    def at(self, moment: datetime, action, *args) -> None:
        heapq.heappush(self.events, (moment, next(self.order), action, args))

    def twilio(self, path: str, params: dict) -> requests.Response:
        signature = self.validator.compute_signature(self.public + path, params)
        response = self.http.post(self.base + path, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)
        if response.status_code >= 400:
            raise RuntimeError(f"POST {path} -> {response.status_code}: {response.text[:300]}")
        return response

    def api(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        response = self.http.request(method, self.api_base + path, json=body, headers=self.api_headers, timeout=10)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text[:300]}")
        return response

    def status(self, sid: str, status: str, moment: datetime, parent: str | None = None, agent=None, round_=0, **extra):
        sequence = next(self.sequences.setdefault(sid, itertools.count()))
        params = {"CallSid": sid, "CallStatus": status, "SequenceNumber": str(sequence), "Timestamp": _rfc2822(moment)}
        if parent:
            params["ParentCallSid"] = parent
        path = "/webhooks/twilio/status" + (f"?agent={agent}&round={round_}" if agent else "")
        self.twilio(path, {**params, **{key: str(value) for key, value in extra.items()}})

    # -- the day ----------------------------------------------------------------------------------

    def known_numbers(self) -> list[str]:
        """Numbers of customers on file (the tickets API through the gateway); none if it cannot say."""
        response = self.http.get(
            f"{self.base}/api/tickets/customers",
            params={"limit": 100},
            headers=self.api_headers,
            timeout=10,
        )
        if response.status_code != 200:
            return []
        return [customer["phone"] for customer in response.json().get("items", []) if customer.get("phone")]

    def run(self, count: int) -> dict:
        # The simulation's own queue, which only its agents' skill serves.
        self.api("PUT", f"/queues/{SIM_QUEUE}", {"required_skills": [SIM_SKILL]})
        for agent in self.agents:
            self.api("POST", "/agents", {"id": agent, "name": agent.replace("-", " ").title(), "skills": [SIM_SKILL]})
            state = self.api("GET", f"/agents/{agent}/routing").json()["state"]
            if state in ("offline", "on_break"):
                self.api("PUT", f"/agents/{agent}/state", {"state": "available"})
        known = self.known_numbers()
        for n, arrived in enumerate(arrival_times(self.day, count, self.rng, until=self.now)):
            short = self.rng.random() < 0.08
            caller = self.rng.choice(known) if known and self.rng.random() < KNOWN_SHARE else None
            call = SimCall(
                sid=f"CA{self.day:%Y%m%d}{n:05d}{self.rng.randrange(16**6):06x}",
                caller=caller or f"+1415555{self.rng.randrange(10_000):04d}",
                arrived=arrived,
                patience=self.rng.uniform(1, 4.5) if short else self.rng.expovariate(1 / 90),
                talk=min(600.0, max(45.0, self.rng.lognormvariate(math.log(180), 0.5))),
            )
            self.calls.append(call)
            self.at(arrived, self.ring, call)
        if not self.events:
            return self.counts
        sim_start, real_start = self.events[0][0], time.monotonic()
        while self.events:
            moment, _, action, args = heapq.heappop(self.events)
            if moment > self.now:
                # The day is played up to now, never later: a call still under way at the end is
                # ended now (hung up, given up, wrapped up), so no agent is left on a call; the rest is left out.
                if action.__name__ not in ENDINGS:
                    continue
                moment = self.now
            delay = real_start + (moment - sim_start).total_seconds() / self.speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            action(moment, *args)
        return self.counts

    def ring(self, now: datetime, call: SimCall) -> None:
        params = {"CallSid": call.sid, "From": call.caller, "To": "+14155550199", "Timestamp": _rfc2822(now)}
        params |= {"CallStatus": "ringing", "Direction": "inbound", "AccountSid": "ACsimulator"}
        self.follow(now, call, self.twilio(f"/webhooks/twilio/voice?queue={SIM_QUEUE}", params).text)
        self.at(call.arrived + timedelta(seconds=call.patience), self.give_up, call)

    def follow(self, now: datetime, call: SimCall, twiml: str) -> None:
        """Do what the service's TwiML says: dial agents, or wait in the queue."""
        root = ElementTree.fromstring(twiml)  # noqa: S314 - TwiML from the service under test
        dial, enqueue = root.find("Dial"), root.find("Enqueue")
        if dial is not None:
            call.state, call.offers = "ringing", {}
            for noun in dial:
                query = parse_qs(urlparse(noun.get("statusCallback", "")).query)
                agent, call.round = query["agent"][0], int(query["round"][0])
                if agent not in self.agents:
                    continue  # never a person's call: only the simulator's own agents are played
                leg = f"CL{next(self.legs):08d}"
                call.offers[agent] = leg
                self.status(leg, "initiated", now, call.sid, agent, call.round)
                self.status(leg, "ringing", now, call.sid, agent, call.round)
                if self.rng.random() >= self.no_answer_rate:
                    self.at(now + timedelta(seconds=self.rng.uniform(2, 9)), self.answer, call, agent, call.round)
                else:
                    self.at(now + timedelta(seconds=20), self.no_answer, call, agent, call.round)
        elif enqueue is not None:
            call.state = "queued"
            self.at(now + timedelta(seconds=1), self.wait, call)
        else:
            call.state = "over"

    def wait(self, now: datetime, call: SimCall) -> None:
        if call.state != "queued":
            return
        queue_time = str(int((now - call.arrived).total_seconds()))
        twiml = self.twilio("/webhooks/twilio/wait", {"CallSid": call.sid, "QueueTime": queue_time}).text
        if ElementTree.fromstring(twiml).find("Leave") is None:  # noqa: S314 - ditto
            self.at(now + timedelta(seconds=10), self.wait, call)  # the hold music plays, then Twilio asks again
            return
        action = {"CallSid": call.sid, "QueueResult": "leave", "QueueTime": queue_time}
        self.follow(now, call, self.twilio("/webhooks/twilio/queue", action).text)

    def answer(self, now: datetime, call: SimCall, agent: str, round_: int) -> None:
        if call.state != "ringing" or call.round != round_ or agent not in call.offers:
            return
        call.state, call.agent = "talking", agent
        self.status(call.offers[agent], "in-progress", now, call.sid, agent, round_)
        for other, leg in call.offers.items():
            if other != agent:
                self.status(leg, "canceled", now, call.sid, other, round_)
        self.counts["answered"] += 1
        self.at(now + timedelta(seconds=call.talk), self.hang_up, call, call.offers[agent])

    def no_answer(self, now: datetime, call: SimCall, agent: str, round_: int) -> None:
        if call.state != "ringing" or call.round != round_:
            return
        self.status(call.offers.pop(agent), "no-answer", now, call.sid, agent, round_)
        self.counts["missed_offers"] += 1
        if not call.offers:  # the whole <Dial> went unanswered: Twilio asks its action what next
            params = {"CallSid": call.sid, "DialCallStatus": "no-answer"}
            self.follow(now, call, self.twilio(f"/webhooks/twilio/voice?round={round_}", params).text)

    def give_up(self, now: datetime, call: SimCall) -> None:
        """The caller's patience ran out before anyone answered."""
        if call.state == "queued":
            queue_time = str(int((now - call.arrived).total_seconds()))
            self.twilio(
                "/webhooks/twilio/queue", {"CallSid": call.sid, "QueueResult": "hangup", "QueueTime": queue_time}
            )
        elif call.state == "ringing":
            for agent, leg in call.offers.items():
                self.status(leg, "canceled", now, call.sid, agent, call.round)
        else:
            return
        call.state = "over"
        self.status(call.sid, "completed", now, CallDuration=int((now - call.arrived).total_seconds()))
        self.counts["abandoned"] += 1

    def hang_up(self, now: datetime, call: SimCall, leg: str) -> None:
        call.state = "over"
        self.status(leg, "completed", now, call.sid, call.agent, call.round, CallDuration=int(call.talk))
        self.status(call.sid, "completed", now, CallDuration=int((now - call.arrived).total_seconds()))
        self.at(now + timedelta(seconds=self.rng.uniform(10, 60)), self.wrap_up, call)

    def wrap_up(self, now: datetime, call: SimCall) -> None:
        reason = self.rng.choices(CALL_REASONS, weights=[REASON_WEIGHTS[reason] for reason in CALL_REASONS])[0]
        response = self.http.post(
            f"{self.api_base}/calls/{call.sid}/wrap-up", json={"reason": reason}, headers=self.api_headers, timeout=10
        )
        if response.status_code == 200:
            self.counts["wrapped_up"] += 1
        elif response.status_code != 409:  # 409: the wrap-up time ran out first, which the service handles
            raise RuntimeError(f"wrap-up of {call.sid} -> {response.status_code}: {response.text[:300]}")


def dev_secret(name: str) -> str | None:
    """A secret ``make run`` generated into var/dev-secrets.env when the environment had none."""
    path = var_dir() / "dev-secrets.env"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == name and value.strip():
            return value.strip()
    return None


def gateway_url(environ=os.environ) -> str:
    """Where the gateway is: ``GATEWAY_URL``, else this machine on ``GATEWAY_PORT`` (8000 by default)."""
    if environ.get("GATEWAY_URL"):
        return environ["GATEWAY_URL"]
    return f"http://127.0.0.1:{environ.get('GATEWAY_PORT') or 8000}"


def _rfc2822(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m services.callrouting.simulate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--base-url", default=gateway_url(), help="the gateway (GATEWAY_URL, else GATEWAY_PORT)")
    parser.add_argument("--public-url", default=os.environ.get("PUBLIC_BASE_URL"), help="the URL the service signs for")
    parser.add_argument(
        "--token",
        default=os.environ.get("CALLCENTER_TOKEN"),
        help="a supervisor's or admin's API token for the gateway (default: CALLCENTER_TOKEN)",
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--speed", type=float, default=600.0, help="simulated seconds per real second")
    parser.add_argument("--date", type=date.fromisoformat, default=datetime.now(UTC).date())
    parser.add_argument("--agents", type=int, default=6)
    parser.add_argument("--no-answer-rate", type=float, default=0.05, help="share of offers an agent lets ring out")
    parser.add_argument("--seed", type=int, default=None)
    return parser.parse_args(argv)


def main(argv=None, out=sys.stdout) -> int:
    args = parse_args(argv)
    token = os.environ.get("TWILIO_AUTH_TOKEN") or dev_secret("TWILIO_AUTH_TOKEN")
    if not token:
        print("TWILIO_AUTH_TOKEN is not set: the service refuses unsigned webhooks.", file=sys.stderr)
        return 2
    if not args.token:
        print("No API token: pass --token or set CALLCENTER_TOKEN (a supervisor's or admin's).", file=sys.stderr)
        return 2
    simulator = Simulator(args, token, out)
    hours = CLOSE_HOUR - OPEN_HOUR
    print(
        f"playing {args.calls} calls on {args.date} {OPEN_HOUR:02d}:00-{CLOSE_HOUR:02d}:00 UTC "
        f"at {args.speed:g}x (about {hours * 3600 / args.speed:.0f} s) against {simulator.base}",
        file=out,
    )
    counts = simulator.run(args.calls)
    print(f"done: {counts}", file=out)
    report = simulator.api("GET", f"/reports/daily?date={args.date}").json()
    print(
        f"GET /api/callrouting/reports/daily?date={args.date}: {report['totals']} top agent {report['top_agent']}",
        file=out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
