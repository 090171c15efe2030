"""HTTP routes of inbound calls: the phone system's webhooks (Twilio's and a generic signed
JSON one), agent states, queues, call records, wrap-up, the live view and the daily report.

Twilio call flow (every request signed, checked against the public URL):

1. ``POST /webhooks/twilio/voice[?queue=name]`` (the number's voice URL): a ``<Dial>`` to the
   chosen agent(s) - ``<Client>``, ``<Sip>`` or ``<Number>`` - whose legs report to
   ``/webhooks/twilio/status?agent=<id>&round=<n>``, and whose action comes back here with
   ``DialCallStatus``: unanswered, the miss is counted and the call routed again. Nobody
   free: ``<Enqueue>`` with ``/webhooks/twilio/wait`` as wait URL.
2. ``/webhooks/twilio/wait`` (polled while the caller waits): the caller's position, read
   out, then hold music or a pause; once an agent is reserved for them (or the queue's
   maximum wait passed) ``<Leave/>``.
3. ``POST /webhooks/twilio/queue`` (the enqueue action): after ``leave`` the ``<Dial>`` to the
   reserved agent (or, on timeout, an apology); after ``hangup`` the call is abandoned.
4. ``POST /webhooks/twilio/status``: the number's status callback (no ``agent``: the caller's
   call) and the agents' legs (``agent``), deduplicated on (CallSid, SequenceNumber).
"""

from __future__ import annotations

import csv
import functools
import io
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import EXCLUDE, Schema, fields, validate
from twilio.twiml.voice_response import Dial, Enqueue, VoiceResponse

from shared.auth import acting_user
from shared.errors import Invalid
from shared.event_catalog import AGENT_STATES, CALL_REASONS, E164
from shared.schemas import Timestamp, page, page_args, page_schema
from shared.web import CSV_TOO, unit_of_work
from shared.webhooks import JSON_ANSWER, TWIML_ANSWER, signed

from . import call_report, callbacks, domain, service, views
from .callbacks import CallbackIn
from .service import InboundConfig

twilio_webhooks = Blueprint(
    "twilio_webhooks", __name__, url_prefix="/webhooks/twilio", description="Twilio Programmable Voice webhooks"
)
phone_events = Blueprint(
    "phone_events", __name__, url_prefix="/webhooks", description="The generic signed JSON webhook of phone systems"
)
agent_states = Blueprint("agent_states", __name__, url_prefix="/agents", description="Agents' states and endpoints")
inbound_queues = Blueprint("inbound_queues", __name__, url_prefix="/queues", description="Inbound queues")
inbound_calls = Blueprint("inbound_calls", __name__, url_prefix="/calls", description="Inbound call records")
live = Blueprint("live", __name__, url_prefix="/live", description="What is happening now")
reports = Blueprint("call_reports", __name__, url_prefix="/reports", description="The daily call report")

BLUEPRINTS = (twilio_webhooks, phone_events, agent_states, inbound_queues, inbound_calls, live, reports)


def _config() -> InboundConfig:
    return InboundConfig.from_settings(current_app.extensions["settings"])


def _xml(response: VoiceResponse | str) -> Response:
    return Response(str(response), mimetype="text/xml")


# --- Twilio -----------------------------------------------------------------------------------

_FINAL_LEG_STATUSES = {
    "in-progress": domain.CONNECTED,
    "answered": domain.CONNECTED,
    "completed": domain.TALK_ENDED,
    "no-answer": domain.OFFER_MISSED,
    "busy": domain.OFFER_MISSED,
    "failed": domain.OFFER_MISSED,
    "canceled": domain.OFFER_CANCELED,
}
_CALLER_GONE = ("completed", "canceled", "busy", "failed", "no-answer")


def _form(name: str, *, required: bool = True) -> str | None:
    value = request.form.get(name, "").strip()
    if required and not value:
        raise Invalid({name: "Missing data for required field."}, location="form")
    return value or None


def _form_int(name: str) -> int | None:
    raw = _form(name, required=False)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise Invalid({name: "Not a valid integer."}, location="form") from None
    if value < 0:
        raise Invalid({name: "Must be 0 or more."}, location="form")
    return value


def _twilio_time(name: str = "Timestamp") -> datetime | None:
    """Twilio's ``Timestamp`` (RFC 2822, e.g. ``Tue, 24 Nov 2026 09:00:05 +0000``); ISO 8601 is accepted too."""
    raw = _form(name, required=False)
    if raw is None:
        return None
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise Invalid({name: "Not an RFC 2822 or ISO 8601 time."}, location="form") from None
    if moment.tzinfo is None:
        raise Invalid({name: "The time needs a UTC offset."}, location="form")
    return moment.astimezone(UTC)


def _arg_int(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise Invalid({name: "Not a valid integer."}, location="query")
    return int(raw)


def _dial(decision: service.Decision, config: InboundConfig) -> VoiceResponse:
    response = VoiceResponse()
    call = decision.call
    dial = Dial(action=f"/webhooks/twilio/voice?round={call.offer_round}", timeout=int(config.offer_timeout_seconds))
    for offer in decision.offers:
        leg = {
            "status_callback": f"/webhooks/twilio/status?agent={offer.agent_id}&round={call.offer_round}",
            "status_callback_event": "initiated ringing answered completed",
        }
        getattr(dial, offer.endpoint_kind)(offer.endpoint, **leg)
    response.append(dial)
    return response


def _answer(decision: service.Decision, config: InboundConfig) -> VoiceResponse | str:
    if decision.offers:
        return _dial(decision, config)
    if decision.call.result is not None or decision.call.state not in ("queued", "ringing"):
        response = VoiceResponse()
        response.hangup()
        return response
    return _enqueue(decision.call.queue)


@functools.lru_cache(maxsize=256)
def _enqueue(queue: str) -> str:
    # Most incoming calls wait in a queue, and this answer depends on the queue's name only:
    # rendering the same TwiML (ElementTree) for each of them costs ~60 µs, so it is kept.
    response = VoiceResponse()
    response.append(
        Enqueue(queue, wait_url="/webhooks/twilio/wait", wait_url_method="POST", action="/webhooks/twilio/queue")
    )
    return str(response)


@twilio_webhooks.route("/voice", methods=["POST"])
@twilio_webhooks.doc(**TWIML_ANSWER)
@signed("twilio")
def twilio_voice():
    """An incoming call (and ``<Dial>``'s action): TwiML that dials an agent or enqueues the caller.

    ``?queue=`` names the queue (``default`` otherwise). Form: ``CallSid``, ``From``, ``To``;
    ``Timestamp`` if the phone system sends one (otherwise now). With ``DialCallStatus`` it is
    the dial's outcome: unanswered, the call is offered again or queued.
    """
    config = _config()
    call_id = _form("CallSid")
    dial_status = _form("DialCallStatus", required=False)
    with unit_of_work() as uow:
        if dial_status is None:
            decision = service.start_call(
                uow,
                call_id=call_id,
                source="twilio",
                from_raw=_form("From", required=False),
                to_raw=_form("To", required=False),
                queue=request.args.get("queue") or None,
                at=_twilio_time(),
                config=config,
                with_position=False,  # <Enqueue> does not say it; the wait URL does
            )
            return _xml(_answer(decision, config))
        if dial_status in ("no-answer", "busy", "failed"):
            decision = service.reroute_after_failed_offer(uow, call_id, _arg_int("round") or 0, dial_status, config)
            return _xml(_answer(decision, config))
    response = VoiceResponse()
    response.hangup()  # answered and over, or the caller hung up while it rang
    return _xml(response)


@twilio_webhooks.route("/wait", methods=["GET", "POST"])
@twilio_webhooks.doc(**TWIML_ANSWER)
@signed("twilio")
def twilio_wait():
    """The waiting caller's music: their position, or ``<Leave/>`` once an agent is reserved for them."""
    config = _config()
    call_id = request.values.get("CallSid", "").strip()
    if not call_id:
        raise Invalid({"CallSid": "Missing data for required field."}, location="form")
    response = VoiceResponse()
    queue_time = request.values.get("QueueTime", "0")
    with unit_of_work() as uow:
        wait = service.wait_in_queue(uow, call_id, int(queue_time) if queue_time.isdigit() else None, config)
    decision = wait.decision
    if wait.leave:
        response.leave()
        return _xml(response)
    response.say(f"You are number {decision.position} in line. An agent will be with you shortly.")
    hold_music = current_app.extensions["settings"].option("HOLD_MUSIC_URL")
    if hold_music:
        response.play(hold_music)
    else:
        response.pause(length=10)
    return _xml(response)


@twilio_webhooks.route("/queue", methods=["POST"])
@twilio_webhooks.doc(**TWIML_ANSWER)
@signed("twilio")
def twilio_queue():
    """``<Enqueue>``'s action: the caller left the queue (``QueueResult``, ``QueueTime``)."""
    config = _config()
    call_id = _form("CallSid")
    result = _form("QueueResult")
    queue_time = _form_int("QueueTime")
    response = VoiceResponse()
    with unit_of_work() as uow:
        left = service.leave_queue(uow, call_id, result, queue_time, request.form.to_dict(), config)
    if left is None:  # bridged, redirected: the call went on elsewhere
        return _xml(response)
    if left.decision is not None:
        return _xml(_dial(left.decision, config) if left.decision.offers else _answer(left.decision, config))
    if left.timed_out:
        response.say("We are sorry, nobody can take your call right now. Please call again later.")
    response.hangup()
    return _xml(response)


@twilio_webhooks.route("/status", methods=["POST"])
@twilio_webhooks.doc(**JSON_ANSWER)
@signed("twilio")
def twilio_status():
    """A status callback: the caller's call (no ``agent``) or an agent's leg (``?agent=&round=``).

    Form: ``CallSid``, ``ParentCallSid`` (a leg), ``CallStatus``, ``CallDuration``,
    ``SequenceNumber``, ``Timestamp``. Deduplicated on (CallSid, SequenceNumber); a callback
    for an unknown call is kept as an orphan (``GET /calls/orphans``).
    """
    config = _config()
    sid = _form("CallSid")
    status = _form("CallStatus")
    agent_id = request.args.get("agent") or None
    record = _form("ParentCallSid", required=False) or sid
    if agent_id:
        kind = _FINAL_LEG_STATUSES.get(status, domain.RINGING)
    else:
        kind = domain.CALLER_LEFT if status in _CALLER_GONE else domain.RINGING
    callback = CallbackIn(
        call_id=sid,
        record_call_id=record,
        source="twilio",
        kind=kind,
        at=_twilio_time(),
        sequence=_form_int("SequenceNumber"),
        agent_id=agent_id,
        talk_seconds=_form_int("CallDuration") if kind == domain.TALK_ENDED else None,
        offer_round=_arg_int("round"),
        payload=request.form.to_dict(),
    )
    with unit_of_work() as uow:
        outcome = callbacks.apply_callback(uow, callback, config)
    return {"call_id": record, "outcome": outcome}


# --- the generic JSON webhook -----------------------------------------------------------------

PHONE_EVENTS = ("call.ringing", "call.answered", "call.ended", "call.abandoned")


class PhoneEventIn(Schema):
    """One event from a phone system adapter (Asterisk, FreeSWITCH ...), signed with ``X-Signature``.

    ``sequence`` counts the events of one call from 0; events are deduplicated on
    (call_id, sequence). ``call.ended`` names the ``agent_id`` the caller talked to; without
    one the caller hung up before anyone answered. Repeating ``call.ringing`` for a queued
    call asks again whether an agent is free for it.
    """

    class Meta:
        unknown = EXCLUDE

    event = fields.String(required=True, validate=validate.OneOf(PHONE_EVENTS))
    call_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    sequence = fields.Integer(required=True, validate=validate.Range(min=0))
    from_number = fields.String(data_key="from", load_default=None, validate=validate.Length(max=32))
    to_number = fields.String(data_key="to", load_default=None, validate=validate.Length(max=32))
    timestamp = Timestamp(
        required=True,
        default_timezone=None,
        metadata={"description": "RFC 3339 with an offset (a time without one is 422)"},
    )
    agent_id = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    queue = fields.String(load_default=None, validate=validate.Length(min=1, max=64))


class OfferOut(Schema):
    agent_id = fields.String()
    endpoint_kind = fields.String()
    endpoint = fields.String()


class PhoneEventOut(Schema):
    call_id = fields.String()
    outcome = fields.String(metadata={"description": "routed, queued, applied, duplicate or orphan"})
    action = fields.String(metadata={"description": "call.ringing: dial or queue"})
    queue = fields.String()
    position = fields.Integer(allow_none=True)
    customer_id = fields.String(allow_none=True)
    offers = fields.List(fields.Nested(OfferOut))


_KINDS = {"call.answered": domain.CONNECTED, "call.abandoned": domain.CALLER_LEFT}


@phone_events.route("/events", methods=["POST"])
@signed("json")
@phone_events.arguments(PhoneEventIn)
@phone_events.response(200, PhoneEventOut)
def phone_event(event):
    """An event from a phone system; ``call.ringing`` answers where to send the call."""
    config = _config()
    timestamp = event["timestamp"].astimezone(UTC)
    with unit_of_work() as uow:
        if event["event"] == "call.ringing":
            existing = views.find_call(uow, event["call_id"])
            if existing is None:
                decision = service.start_call(
                    uow,
                    call_id=event["call_id"],
                    source="json",
                    from_raw=event["from_number"],
                    to_raw=event["to_number"],
                    queue=event["queue"],
                    at=timestamp,
                    config=config,
                )
            else:
                decision = service.retry_queued_call(uow, event["call_id"], config)
            return {**decision.as_dict(), "outcome": "queued" if decision.queued else "routed"}
        if event["event"] == "call.answered" and not event["agent_id"]:
            raise Invalid({"agent_id": "call.answered needs the agent who answered."})
        kind = _KINDS.get(event["event"])
        if event["event"] == "call.ended":
            kind = domain.TALK_ENDED if event["agent_id"] else domain.CALLER_LEFT
        outcome = callbacks.apply_callback(
            uow,
            CallbackIn(
                call_id=event["call_id"],
                record_call_id=event["call_id"],
                source="json",
                kind=kind,
                at=timestamp,
                sequence=event["sequence"],
                agent_id=event["agent_id"],
                # The adapter reports no agent legs: a caller gone unanswered ends any open offer now.
                explicit_abandon=kind == domain.CALLER_LEFT,
                payload=request.get_json(),
            ),
            config,
        )
    return {"call_id": event["call_id"], "outcome": outcome}


# --- agents -----------------------------------------------------------------------------------


class AgentStateIn(Schema):
    state = fields.String(
        required=True,
        validate=validate.OneOf(AGENT_STATES),
        metadata={"description": "available, on_break or offline; the other states belong to the routing engine"},
    )


class AgentStateOut(Schema):
    agent_id = fields.String()
    state = fields.String()
    state_changed_at = Timestamp(allow_none=True)


class AgentRoutingIn(Schema):
    endpoint_kind = fields.String(required=True, validate=validate.OneOf(domain.ENDPOINT_KINDS))
    endpoint = fields.String(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Twilio client name, sip:user@host, or an E.164 number"},
    )
    queues = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)), load_default=list, validate=validate.Length(max=50)
    )


class AgentRoutingOut(AgentRoutingIn):
    agent_id = fields.String()
    state = fields.String()
    missed_offers = fields.Integer()
    idle_since = Timestamp(allow_none=True)
    current_call_id = fields.String(allow_none=True)
    calls_today = fields.Integer()
    talk_seconds_today = fields.Float()


def _check_endpoint(body: dict) -> None:
    kind, endpoint = body["endpoint_kind"], body["endpoint"]
    rules = {
        "client": (r"^[A-Za-z0-9_.\-]+$", "A Twilio client name: letters, digits, _ . -"),
        "sip": (r"^sips?:[^@\s]+@[^@\s]+$", "A SIP URI: sip:user@host"),
        "number": (E164, "An E.164 number (+ and 7 to 15 digits)"),
    }
    pattern, message = rules[kind]
    if not re.match(pattern, endpoint):
        raise Invalid({"endpoint": message})


@agent_states.route("/<agent_id>/state")
class AgentState(MethodView):
    @agent_states.arguments(AgentStateIn)
    @agent_states.response(200, AgentStateOut)
    def put(self, body, agent_id):
        """The agent sets their state; 409 while the routing engine holds them (reserved, on_call, wrap_up)."""
        with unit_of_work() as uow:
            return service.set_agent_state(uow, agent_id, body["state"], _config())


@agent_states.route("/<agent_id>/routing")
class AgentRoutingView(MethodView):
    @agent_states.arguments(AgentRoutingIn)
    @agent_states.response(200, AgentRoutingOut)
    def put(self, body, agent_id):
        """Where the agent's calls are sent (client, SIP or number) and which queues they serve (none: all)."""
        _check_endpoint(body)
        with unit_of_work() as uow:
            service.put_agent_routing(uow, agent_id, body)
        return self._read(agent_id)

    @agent_states.response(200, AgentRoutingOut)
    def get(self, agent_id):
        """The agent's inbound routing settings and counters."""
        return self._read(agent_id)

    @staticmethod
    def _read(agent_id):
        with unit_of_work(read_only=True) as uow:
            agent, row = service.get_agent_routing(uow, agent_id)
            values = (
                service._routing_defaults(agent_id)
                if row is None
                else {name: getattr(row, name) for name in AgentRoutingOut().fields if hasattr(row, name)}
            )
            return {**values, "agent_id": agent_id, "state": agent.state}


# --- queues -----------------------------------------------------------------------------------


class QueueIn(Schema):
    strategy = fields.String(validate=validate.OneOf(domain.STRATEGIES))
    required_skills = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)), validate=validate.Length(max=20)
    )
    service_level_seconds = fields.Integer(validate=validate.Range(min=1, max=3600))
    short_abandon_seconds = fields.Integer(validate=validate.Range(min=0, max=600))
    wrap_up_seconds = fields.Integer(validate=validate.Range(min=0, max=3600))
    max_wait_seconds = fields.Integer(validate=validate.Range(min=1, max=86400))


class QueueOut(QueueIn):
    name = fields.String()


QueueQuery = page_args(name="QueueQuery")
QueuePage = page_schema(QueueOut, "QueuePage")


@inbound_queues.route("")
class Queues(MethodView):
    @inbound_queues.arguments(QueueQuery, location="query")
    @inbound_queues.response(200, QueuePage)
    def get(self, query):
        """Every queue by name (one named ``default`` appears with the first call)."""
        with unit_of_work(read_only=True) as uow:
            found, total = views.list_queues(uow, query["limit"], query["offset"])
            return page(found, total, query)


@inbound_queues.route("/<name>")
class QueueByName(MethodView):
    @inbound_queues.arguments(QueueIn)
    @inbound_queues.response(200, QueueOut)
    def put(self, body, name):
        """Create or change a queue: strategy, required skills, T, t_s, wrap-up time, maximum wait."""
        if len(name) > 64:
            raise Invalid({"name": "At most 64 characters."}, location="path")
        with unit_of_work() as uow:
            return service.put_queue(uow, name, body)


# --- calls ------------------------------------------------------------------------------------


class CallOut(Schema):
    id = fields.String(attribute="call_id")
    source = fields.String()
    from_number = fields.String(allow_none=True)
    to_number = fields.String(allow_none=True)
    customer_id = fields.String(allow_none=True)
    queue = fields.String()
    state = fields.String(metadata={"description": "queued, ringing, connected, wrap_up, completed, abandoned"})
    offered_to = fields.List(fields.String())
    agent_id = fields.String(allow_none=True)
    enqueued_at = Timestamp()
    answered_at = Timestamp(allow_none=True)
    ended_at = Timestamp(allow_none=True)
    wrapped_up_at = Timestamp(allow_none=True)
    result = fields.String(allow_none=True, metadata={"description": "answered, abandoned, short_abandon, timeout"})
    wait_seconds = fields.Float(allow_none=True)
    talk_seconds = fields.Float(allow_none=True)
    wrap_up_seconds = fields.Float(allow_none=True)
    reason = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    ticket_id = fields.String(allow_none=True)
    last_sequence = fields.Integer(allow_none=True)


class CallQuery(page_args(name="CallQuery")):
    date = fields.Date(load_default=None, metadata={"description": "the UTC day the call came in"})
    queue = fields.String(load_default=None)
    agent_id = fields.String(load_default=None)
    customer_id = fields.String(load_default=None)
    state = fields.String(load_default=None)
    result = fields.String(load_default=None, validate=validate.OneOf(domain.CALL_RESULTS))


CallPage = page_schema(CallOut, "CallPage")
OrphanPageQuery = page_args(name="OrphanPageQuery")


class OrphanOut(Schema):
    call_id = fields.String()
    sequence = fields.Integer(allow_none=True)
    source = fields.String()
    kind = fields.String()
    at = Timestamp()
    agent_id = fields.String(allow_none=True)
    payload = fields.Dict()
    received_at = Timestamp()


OrphanPage = page_schema(OrphanOut, "OrphanPage")


class WrapUpIn(Schema):
    reason = fields.String(required=True, validate=validate.OneOf(CALL_REASONS))
    notes = fields.String(load_default=None, validate=validate.Length(max=5000))
    ticket_id = fields.UUID(load_default=None)


@inbound_calls.route("")
class Calls(MethodView):
    @inbound_calls.arguments(CallQuery, location="query")
    @inbound_calls.response(200, CallPage)
    def get(self, query):
        """Call records, newest first, filtered and paged."""
        limit, offset = query.pop("limit"), query.pop("offset")
        day = query.pop("date")
        filters = {**query, "day": day.isoformat() if day else None}
        with unit_of_work(read_only=True) as uow:
            items, total = views.list_calls(uow, filters, limit, offset)
            return page(items, total, {"limit": limit, "offset": offset})


@inbound_calls.route("/orphans")
class Orphans(MethodView):
    @inbound_calls.arguments(OrphanPageQuery, location="query")
    @inbound_calls.response(200, OrphanPage)
    def get(self, query):
        """Callbacks about calls this service never heard of, newest first."""
        with unit_of_work(read_only=True) as uow:
            found, total = views.list_orphans(uow, query["limit"], query["offset"])
            return page(found, total, query)


@inbound_calls.route("/<call_id>")
class CallById(MethodView):
    @inbound_calls.response(200, CallOut)
    def get(self, call_id):
        """One call record."""
        with unit_of_work(read_only=True) as uow:
            return views.get_call(uow, call_id)


@inbound_calls.route("/<call_id>/wrap-up")
class WrapUp(MethodView):
    @inbound_calls.arguments(WrapUpIn)
    @inbound_calls.response(200, CallOut)
    def post(self, body, call_id):
        """End the wrap-up with the reason (and notes, linked ticket); announces ``call.completed``."""
        ticket_id = str(body["ticket_id"]) if body["ticket_id"] else None
        user = acting_user()
        with unit_of_work() as uow:
            try:
                return callbacks.wrap_up(
                    uow,
                    call_id,
                    reason=body["reason"],
                    notes=body["notes"],
                    ticket_id=ticket_id,
                    config=_config(),
                    only_agent=user.id if user.role == "agent" else None,
                )
            except PermissionError:
                abort(403, message="An agent wraps up only their own calls.")


# --- live view and report ---------------------------------------------------------------------


class QueueNow(Schema):
    queue = fields.String()
    waiting = fields.Integer()
    longest_wait_seconds = fields.Float()


class AgentNow(Schema):
    agent_id = fields.String()
    state = fields.String()
    since = Timestamp(allow_none=True)
    call_id = fields.String(allow_none=True)


class LiveOut(Schema):
    at = Timestamp()
    calls_waiting = fields.Integer()
    longest_wait_seconds = fields.Float()
    calls_ringing = fields.Integer()
    calls_connected = fields.Integer()
    queues = fields.List(fields.Nested(QueueNow))
    agents_by_state = fields.Dict(keys=fields.String(), values=fields.Integer())
    agents = fields.List(fields.Nested(AgentNow))


@live.route("")
class Live(MethodView):
    @live.response(200, LiveOut)
    def get(self):
        """Calls waiting (per queue), the longest wait, agents by state."""
        with unit_of_work() as uow:
            # Timers that ran out are applied first, so the view never shows a stale state.
            if callbacks.expire_timers(uow, _config()):
                uow.commit()
            return views.live_view(uow)


class DailyReportQuery(Schema):
    date = fields.Date(required=True, metadata={"description": "YYYY-MM-DD, a UTC day"})
    queue = fields.String(load_default=None)
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))
    part = fields.String(
        load_default="hours",
        validate=validate.OneOf(("hours", "agents", "reasons")),
        metadata={"description": "for CSV: the hourly breakdown (with a total row), agents, or reasons"},
    )


class CallFiguresOut(Schema):
    entered = fields.Integer()
    offered = fields.Integer()
    answered = fields.Integer()
    abandoned = fields.Integer()
    short_abandoned = fields.Integer()
    timed_out = fields.Integer()
    abandon_rate = fields.Float(allow_none=True)
    asa_seconds = fields.Float(allow_none=True)
    service_level = fields.Float(allow_none=True)
    handled = fields.Integer()
    aht_seconds = fields.Float(allow_none=True)


class CallHourOut(CallFiguresOut):
    hour = fields.Integer()


class AgentCallFiguresOut(Schema):
    agent_id = fields.String()
    calls = fields.Integer()
    talk_seconds = fields.Float()
    handled = fields.Integer()
    aht_seconds = fields.Float(allow_none=True)


class DailyReportOut(Schema):
    date = fields.String()
    queue = fields.String(allow_none=True)
    service_level_threshold_seconds = fields.Float()
    totals = fields.Nested(CallFiguresOut)
    hours = fields.List(fields.Nested(CallHourOut))
    agents = fields.List(
        fields.Nested(AgentCallFiguresOut), metadata={"description": "most calls first, ties: lower AHT"}
    )
    top_agent = fields.String(allow_none=True)
    reasons = fields.Dict(keys=fields.String(), values=fields.Integer())
    orphan_callbacks = fields.Integer()


@reports.route("/daily")
class DailyReport(MethodView):
    @reports.arguments(DailyReportQuery, location="query")
    @reports.response(200, DailyReportOut)
    @reports.doc(**CSV_TOO)
    def get(self, query):
        """The day's inbound calls: offered, answered, abandoned, abandon rate, ASA, service level, AHT; per
        hour, per agent and by reason. ``format=csv`` exports one part as CSV."""
        with unit_of_work(read_only=True) as uow:
            report = views.daily_report(uow, query["date"], query["queue"])
        if query["format"] == "csv":
            return _csv(report, query["part"])
        return report


def _csv(report: dict, part: str) -> Response:
    out = io.StringIO()
    if part == "hours":
        writer = csv.DictWriter(out, fieldnames=call_report.CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(report["hours"])
        writer.writerow({**report["totals"], "hour": "total"})
    elif part == "agents":
        writer = csv.DictWriter(out, fieldnames=("agent_id", "calls", "talk_seconds", "handled", "aht_seconds"))
        writer.writeheader()
        writer.writerows(report["agents"])
    else:
        writer = csv.writer(out)
        writer.writerow(("reason", "calls"))
        writer.writerows(report["reasons"].items())
    name = f"calls-{report['date']}-{part}.csv"
    return Response(
        out.getvalue(), mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
