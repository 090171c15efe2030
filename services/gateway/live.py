"""Live updates per signed-in user (Server-Sent Events from the broker).

``GET /api/live`` stays open and carries, for the signed-in user:

- ``call.ringing``: a call offered to this agent (the screen-pop), with the caller's view;
- ``ticket.assigned``: a ticket given to this user;
- ``recovery.opened``: a service-recovery case was opened (supervisors and admins);
- ``agent.state``: this agent's own state changed;
- ``ready``: the stream listens (again): refetch what the screen shows, nothing missed is replayed.

The route only streams: what a ringing call shows (the caller and their view, which records the
look in the audit log) is the use case ``screen_pop.with_caller``.

One open stream holds one worker thread (gunicorn's gthread worker, ``GATEWAY_THREADS``) for
as long as it lasts; the broker side is ``live_hub``. The console's ``EventSource`` sends its
session cookie; API clients send their bearer token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

from flask import Response, current_app, stream_with_context
from flask_smorest import Blueprint

from shared.auth import User, acting_user
from shared.problems import problem

from . import screen_pop
from .live_hub import StreamClosed, Subscription, TooManyStreams, hub_of
from .live_router import Notice

log = logging.getLogger(__name__)

live = Blueprint("live", __name__, description="Live updates per signed-in user (Server-Sent Events from the broker).")

# Which role these routes need beyond an agent (shared.auth rules; collected by app.py).
ACCESS: list = []

_EVENT_STREAM_DOC = {
    200: {
        "description": (
            "A text/event-stream: events `call.ringing`, `ticket.assigned`, `recovery.opened`, `agent.state` and "
            "`ready` (refetch: events missed while disconnected are not replayed), each with an `id` and JSON "
            "`data`; a comment line as heartbeat every `LIVE_HEARTBEAT_SECONDS` (15)."
        ),
        # The schema of one event (its fields as the SSE format names them; data is JSON text).
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "event": {"type": "string"},
                        "data": {"type": "string"},
                        "id": {"type": "string"},
                        "retry": {"type": "integer"},
                    },
                }
            }
        },
    },
    503: {"description": "This gateway process serves as many streams as it may (`LIVE_MAX_STREAMS`); retry later."},
}


@live.route("/api/live")
@live.doc(summary="Live updates for the signed-in user (Server-Sent Events)", responses=_EVENT_STREAM_DOC)
def live_stream():
    """The signed-in user's live updates, as Server-Sent Events, until the client goes away."""
    settings = current_app.extensions["settings"]
    user = acting_user()
    try:
        subscription = hub_of(current_app).subscribe(user)
    except TooManyStreams:
        answer = problem(503, "Service Unavailable", "This gateway serves as many live streams as it may; retry.")
        answer.headers["Retry-After"] = "5"
        return answer
    heartbeat = float(settings.option("LIVE_HEARTBEAT_SECONDS", "15"))
    retry_ms = int(float(settings.option("LIVE_RETRY_SECONDS", "3")) * 1000)
    view_seconds = float(settings.option("LIVE_VIEW_DEADLINE_SECONDS", "0.5"))
    events = _events(subscription, user, heartbeat=heartbeat, retry_ms=retry_ms, view_seconds=view_seconds)
    response = Response(
        # The request context stays pushed while the body streams: g.user is the receiving user
        # when the caller's view is assembled for a ringing call.
        stream_with_context(events),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},  # no proxy buffering
    )
    # The server closes the response when the client has gone (a write failed) or the stream
    # ended, even if the body was never read: then the stream leaves the hub.
    response.call_on_close(subscription.close)
    return response


def _events(
    subscription: Subscription, user: User, *, heartbeat: float, retry_ms: int, view_seconds: float
) -> Iterator[str]:
    yield f"retry: {retry_ms}\n: live updates for {user.id}\n\n"
    while True:
        try:
            notice = subscription.next(timeout=heartbeat)
        except StreamClosed:
            return
        if notice is None:
            yield ": heartbeat\n\n"  # keeps proxies from closing an idle stream; a dead client shows here
            continue
        if notice.event == "call.ringing":
            notice = screen_pop.with_caller(notice, user, view_seconds)
        yield server_sent_event(notice)


def server_sent_event(notice: Notice) -> str:
    lines = []
    if notice.id:
        lines.append(f"id: {notice.id}")
    lines.append(f"event: {notice.event}")
    lines.append("data: " + json.dumps(notice.data, separators=(",", ":"), default=str))  # one line: no raw newlines
    return "\n".join(lines) + "\n\n"
