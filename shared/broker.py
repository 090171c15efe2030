"""Connections to RabbitMQ: parameters, and a blocking publisher with confirms.

pika connections are not thread-safe: every thread opens its own, after gunicorn forks,
and publishing and consuming never share one.
"""

from __future__ import annotations

import pika

from shared import topology
from shared.config import Settings


def connection_parameters(amqp_url: str, *, heartbeat: int = 30, timeout: float = 5.0) -> pika.URLParameters:
    """Heartbeats on (every ``heartbeat`` s, unless the URL says ``?heartbeat=``), short timeouts."""
    parameters = pika.URLParameters(amqp_url)
    if "heartbeat=" not in amqp_url:
        parameters.heartbeat = heartbeat
    parameters.blocked_connection_timeout = 60
    parameters.socket_timeout = timeout
    parameters.stack_timeout = timeout * 2
    parameters.connection_attempts = 1
    return parameters


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
