"""Events of inbound calls.

Publishes (``service.py``, ``callbacks.py``):
- ``call.started``: a call is ringing (``start_call``);
- ``call.answered``: an agent answered it (a callback, ``apply_callback``);
- ``call.abandoned``: the caller hung up before an answer, or the wait timed out;
- ``call.completed``: the wrap-up is done, with its reason (``wrap_up``, or the wrap-up timer);
- ``agent.state_changed``: every agent state change, the agent's own or the engine's.

Consumes nothing: inbound calls come from the phone system's webhooks, and callers are
identified from the customer replica (``..customers``), which ``..events`` keeps.
"""

from __future__ import annotations

from shared.consumer import Handler

PUBLISHES = ("call.started", "call.answered", "call.abandoned", "call.completed", "agent.state_changed")

HANDLERS: dict[str, Handler] = {}
