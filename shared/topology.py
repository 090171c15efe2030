"""The broker's shape, derived from the event catalog.

    events (topic) --<event type>--> <service>.events            (quorum, one per consumer)
    <service>.retry.<ms>ms  --TTL, dead-lettered back-->  <service>.events
    <service>.dead                                                (parking lot, with reasons)
    events --unroutable--> events.unrouted (alternate exchange)   (kept, not dropped)

Every relay and consumer declares the whole topology when it connects, so a consumer's
queue exists before the first event it should receive is published, even on a broker
that has never seen that consumer run. Declarations are idempotent.
"""

from __future__ import annotations

from shared import event_catalog

UNROUTED = "events.unrouted"


def work_queue(service: str) -> str:
    return f"{service}.events"


def parking_queue(service: str) -> str:
    return f"{service}.dead"


def retry_queue(service: str, delay_seconds: float) -> str:
    return f"{service}.retry.{round(delay_seconds * 1000)}ms"


def _quorum(**extra) -> dict:
    return {"x-queue-type": "quorum", **extra}


def declare(channel, exchange: str, retry_delays: tuple[float, ...]) -> None:
    channel.exchange_declare(UNROUTED, exchange_type="fanout", durable=True)
    channel.queue_declare(
        UNROUTED, durable=True, arguments=_quorum(**{"x-max-length": 1_000_000, "x-overflow": "drop-head"})
    )
    channel.queue_bind(UNROUTED, UNROUTED)
    channel.exchange_declare(exchange, exchange_type="topic", durable=True, arguments={"alternate-exchange": UNROUTED})
    for service in event_catalog.consuming_services():
        declare_service(channel, exchange, service, retry_delays)


def declare_service(channel, exchange: str, service: str, retry_delays: tuple[float, ...]) -> None:
    queue = work_queue(service)
    channel.queue_declare(queue, durable=True, arguments=_quorum())
    for event_type in event_catalog.consumed_by(service):
        channel.queue_bind(queue, exchange, routing_key=event_type)
    channel.queue_declare(parking_queue(service), durable=True, arguments=_quorum())
    for delay in retry_delays:
        channel.queue_declare(
            retry_queue(service, delay),
            durable=True,
            arguments=_quorum(
                **{
                    "x-message-ttl": round(delay * 1000),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue,
                    # Quorum queues dead-letter at least once only when they refuse
                    # publishes rather than drop messages on overflow.
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                }
            ),
        )
