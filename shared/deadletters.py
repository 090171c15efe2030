"""Inspect and replay parked events: ``python -m shared.deadletters <command> <service>``.

    list <service>                 one line per parked message: id, type, when, why
    show <service> <message-id>    the whole message: headers and envelope
    replay <service> (<message-id>... | --all)
                                   send back to the service's work queue, attempts reset

Listing takes the messages off the parking lot without acknowledging them and lets them
go back when it disconnects, so looking never loses anything. A replayed message is
acknowledged on the parking lot only after the work queue has confirmed its copy.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import pika

from shared import topology
from shared.broker import ConfirmedPublisher, connection_parameters
from shared.config import SERVICES, Settings


@dataclass
class ParkedMessage:
    delivery_tag: int
    properties: pika.BasicProperties
    body: bytes

    @property
    def message_id(self) -> str:
        return self.properties.message_id or f"(no id, tag {self.delivery_tag})"

    @property
    def headers(self) -> dict:
        return dict(self.properties.headers or {})

    def summary(self) -> str:
        headers = self.headers
        return "\t".join(
            str(part)
            for part in (
                self.message_id,
                headers.get("x-original-routing-key", self.properties.type or "?"),
                headers.get("x-parked-at", "?"),
                headers.get("x-reason", "?"),
            )
        )


class ParkingLot:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.queue = topology.parking_queue(settings.service)
        self.connection = pika.BlockingConnection(connection_parameters(settings.amqp_url))
        self.channel = self.connection.channel()

    def browse(self, limit: int = 10_000) -> list[ParkedMessage]:
        """Hold up to ``limit`` parked messages unacknowledged (they return on close)."""
        held = []
        while len(held) < limit:
            method, properties, body = self.channel.basic_get(self.queue, auto_ack=False)
            if method is None:
                break
            held.append(ParkedMessage(method.delivery_tag, properties, body))
        return held

    def replay(self, message: ParkedMessage, publisher: ConfirmedPublisher) -> None:
        headers = {
            key: value
            for key, value in message.headers.items()
            if key not in ("x-attempt", "x-last-error", "x-reason", "x-parked-at", "x-death")
            and not key.startswith("x-first-death")
        }
        headers["x-replayed-from"] = self.queue
        properties = pika.BasicProperties(
            content_type=message.properties.content_type,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message.properties.message_id,
            type=message.properties.type,
            app_id=message.properties.app_id,
            correlation_id=message.properties.correlation_id,
            headers=headers,
        )
        publisher.publish("", topology.work_queue(self.settings.service), message.body, properties)
        self.channel.basic_ack(message.delivery_tag)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


def main(argv: list[str] | None = None, out=sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.deadletters", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("list", "show", "replay"):
        command = commands.add_parser(name)
        command.add_argument("service", choices=SERVICES)
        if name == "show":
            command.add_argument("message_id")
        if name == "replay":
            command.add_argument("message_ids", nargs="*")
            command.add_argument("--all", action="store_true", help="replay every parked message")
    args = parser.parse_args(argv)
    if args.command == "replay" and not (args.message_ids or args.all):
        parser.error("replay needs message ids or --all")

    settings = Settings.from_env(args.service)
    lot = ParkingLot(settings)
    try:
        parked = lot.browse()
        if args.command == "list":
            for message in parked:
                print(message.summary(), file=out)
            print(f"{len(parked)} parked message(s) in {lot.queue}", file=out)
            return 0
        if args.command == "show":
            matches = [message for message in parked if message.message_id == args.message_id]
            if not matches:
                print(f"no parked message {args.message_id} in {lot.queue}", file=out)
                return 1
            for message in matches:
                try:
                    body = json.loads(message.body)
                except ValueError:
                    body = message.body.decode(errors="replace")
                print(json.dumps({"headers": message.headers, "body": body}, indent=2, default=str), file=out)
            return 0
        chosen = parked if args.all else [m for m in parked if m.message_id in set(args.message_ids)]
        missing = set(args.message_ids) - {message.message_id for message in chosen}
        publisher = ConfirmedPublisher(settings.amqp_url)
        try:
            for message in chosen:
                lot.replay(message, publisher)
                print(f"replayed {message.message_id}", file=out)
        finally:
            publisher.close()
        for message_id in sorted(missing):
            print(f"no parked message {message_id} in {lot.queue}", file=out)
        return 1 if missing else 0
    finally:
        lot.close()


if __name__ == "__main__":
    raise SystemExit(main())
