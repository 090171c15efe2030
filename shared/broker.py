"""Connections to RabbitMQ: parameters, and a blocking publisher with confirms.

pika connections are not thread-safe: every thread opens its own, after gunicorn forks,
and publishing and consuming never share one.
"""

from __future__ import annotations

import random

import pika

from shared import topology
from shared.config import Settings


def broker_urls(amqp_url: str) -> list[str]:
    """The nodes of ``AMQP_URL``: one URL, or several separated by commas (a cluster's nodes)."""
    urls = [url.strip() for url in amqp_url.split(",") if url.strip()]
    if not urls:
        raise ValueError("AMQP_URL names no broker")
    return urls


def connection_parameters(amqp_url: str, *, heartbeat: int = 30, timeout: float = 5.0) -> list[pika.URLParameters]:
    """Parameters for every node of ``amqp_url``, to be tried in turn (pika takes the list).

    Heartbeats on (every ``heartbeat`` s, unless a URL says ``?heartbeat=``), short timeouts. With
    several nodes the list starts at a random one, so that the processes of a service spread their
    connections over a cluster, and a process whose node went away reconnects to the next.
    """
    urls = broker_urls(amqp_url)
    start = random.randrange(len(urls))
    every = []
    for url in urls[start:] + urls[:start]:
        parameters = pika.URLParameters(url)
        if "heartbeat=" not in url:
            parameters.heartbeat = heartbeat
        parameters.blocked_connection_timeout = 60
        parameters.socket_timeout = timeout
        parameters.stack_timeout = timeout * 2
        parameters.connection_attempts = 1
        every.append(parameters)
    return every


def ping(amqp_url: str, timeout: float = 2.0) -> None:
    """Open and close a connection; raises when the broker cannot be reached."""
    connection = pika.BlockingConnection(connection_parameters(amqp_url, timeout=timeout))
    connection.close()


def declare_topology(settings: Settings) -> None:
    """Declare the whole topology over a short-lived connection."""
    connection = pika.BlockingConnection(connection_parameters(settings.amqp_url))
    try:
        topology.declare(connection.channel(), settings.exchange, settings.retry_delays)
    finally:
        connection.close()


class ConfirmedPublisher:
    """A blocking publisher: each ``publish`` returns only once the broker has confirmed."""

    def __init__(self, amqp_url: str):
        self.connection = pika.BlockingConnection(connection_parameters(amqp_url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
        # Raises UnroutableError / NackError when the broker did not take the message.
        self.channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)

    def keep_alive(self) -> None:
        """Let pika send and answer heartbeats; a blocking connection does so only when called."""
        self.connection.process_data_events(time_limit=0)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()
