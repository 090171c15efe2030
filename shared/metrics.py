"""Prometheus metrics, shared by a service's web workers and its event workers.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (``make run`` sets one per service), every
process of a service writes there and the web ``/metrics`` endpoint reports them all, so
the relay's and consumer's counters are scraped from the service's one port.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from sqlalchemy import func, select

from shared import config
from shared.backbone import outbox

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "endpoint", "status"])
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple] = {}


def observe_request(method: str, endpoint: str, status: int, seconds: float) -> None:
    """Count an answered request and its latency.

    ``labels()`` validates and looks up its label values on every call; a request's pair of
    children is looked up once per (method, endpoint, status) and kept, as prometheus_client
    keeps every child anyway.
    """
    key = (method, endpoint, status)
    children = _REQUEST_CHILDREN.get(key)
    if children is None:
        children = _REQUEST_CHILDREN[key] = (
            HTTP_REQUESTS.labels(method, endpoint, status),
            HTTP_LATENCY.labels(method, endpoint),
        )
    children[0].inc()
    children[1].observe(seconds)


EVENTS_PUBLISHED = Counter("events_published_total", "Outbox events confirmed by the broker", ["event_type"])
EVENTS_REFUSED = Counter("events_refused_total", "Outbox events the broker nacked or returned (retried)")
OUTBOX_LAG = Histogram(
    "outbox_publish_lag_seconds",
    "Time from outbox insert to broker confirm",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENTS_CONSUMED = Counter(
    "events_consumed_total", "Events handled by this service's consumer", ["event_type", "outcome"]
)

# The gateway's calls to the services: outcome ok (any answer below 500), server_error, timeout,
# unreachable or circuit_open (the breaker refused to call at all).
UPSTREAM_CALLS = Histogram(
    "upstream_call_duration_seconds",
    "Time of a gateway call to a service, by outcome",
    ["service", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def render(extra_collectors=()) -> tuple[bytes, str]:
    """The exposition text for a scrape, plus collectors read at scrape time (outbox backlog)."""
    if config.prometheus_multiproc_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    extra = CollectorRegistry(auto_describe=False)
    for collector in extra_collectors:
        extra.register(collector)
    return generate_latest(registry) + generate_latest(extra), CONTENT_TYPE_LATEST


class OutboxBacklogCollector:
    """Reads the outbox at scrape time: how much is waiting and for how long."""

    def __init__(self, database):
        self.database = database

    def collect(self):
        with self.database.reader.connect() as connection:
            count, oldest = connection.execute(
                select(func.count(), func.min(outbox.c.created_ts)).where(outbox.c.published_ts.is_(None))
            ).one()
        pending = GaugeMetricFamily("outbox_pending_events", "Outbox events not yet confirmed by the broker")
        pending.add_metric([], count)
        yield pending
        age = GaugeMetricFamily("outbox_oldest_pending_seconds", "Age of the oldest unpublished outbox event")
        age.add_metric([], 0.0 if oldest is None else max(0.0, time.time() - oldest))
        yield age
