"""The scale test's stack, started from the project's own scripts on this machine.

- a RabbitMQ cluster of three nodes (``scripts/rabbitmq-cluster.sh``);
- one database per service on the PostgreSQL server of ``TEST_DATABASE_URL``
  (``scripts/with-postgres.sh`` starts a throwaway one), migrated once by the one-shot
  ``python -m services setup``; every other process runs with ``MIGRATE_ON_START=0``;
- two gunicorn replicas of every service (``deploy/gunicorn.conf.py``), two outbox relays and
  two consumers per service (the consumers count their applications: tests/scale/counting_worker.py);
- HAProxy (Debian's) as the load balancer in front of each service's replicas, as a Kubernetes
  Service or the compose file's proxy would be, and as the TLS-terminating reverse proxy in front
  of the gateway that sets the forwarded headers (deploy/haproxy.cfg is the production one).

Processes are bench.procs.Processes children, each in its own session, with their logs in the
stack's directory (kept when the test fails).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.procs import Processes, free_port, wait_for_http
from shared.config import PROJECT_ROOT, SERVICES
from shared.db import Database
from tests.support.counting import metadata as counting_metadata
from tests.support.postgres import create_database, drop_databases

CLUSTER = PROJECT_ROOT / "scripts" / "rabbitmq-cluster.sh"
REPLICAS = 2
TWILIO_TOKEN = "scale-twilio-token"


@dataclass
class Replica:
    name: str
    port: int
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Stack:
    root: Path
    processes: Processes = field(init=False)
    cluster_env: dict[str, str] = field(default_factory=dict)
    amqp_url: str = ""
    database_urls: dict[str, str] = field(default_factory=dict)
    web: dict[str, list[Replica]] = field(default_factory=dict)  # service -> replicas
    relays: dict[str, list[Replica]] = field(default_factory=dict)
    consumers: dict[str, list[Replica]] = field(default_factory=dict)
    balancer_ports: dict[str, int] = field(default_factory=dict)  # service -> HAProxy frontend
    public_port: int = 0  # HAProxy's TLS frontend of the gateway
    certificate: Path | None = None
    internal_secret: str = field(default_factory=lambda: uuid.uuid4().hex)
    _created_databases: list[str] = field(default_factory=list)

    def __post_init__(self):
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.processes = Processes(self.root / "logs")

    # -- the parts ------------------------------------------------------------------------

    def start_cluster(self) -> None:
        ports = [free_port() for _ in range(3)]
        self.cluster_env = dict(
            os.environ,
            RABBITMQ_CLUSTER_DIR=str(self.root / "rabbitmq"),
            RABBITMQ_CLUSTER_PORTS=" ".join(map(str, ports)),
            RABBITMQ_CLUSTER_DIST_PORTS=" ".join(str(free_port()) for _ in range(3)),
        )
        self.cluster("start", timeout=240)
        self.amqp_url = self.cluster("urls").strip()

    def cluster(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [str(CLUSTER), *args], env=self.cluster_env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmq-cluster.sh {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout

    def queue_leaders(self, on_node: int) -> dict[str, str]:
        listing = self.cluster("ctl", str(on_node), "-q", "list_queues", "name", "leader", "--formatter", "json")
        return {queue["name"]: queue.get("leader", "") for queue in json.loads(listing)}

    def node_number(self, node_name: str) -> int:
        ports = self.cluster_env["RABBITMQ_CLUSTER_PORTS"].split()
        return ports.index(node_name.split("@")[0].rsplit("-", 1)[1]) + 1

    def create_databases(self, server_url: str) -> None:
        for service in SERVICES:
            name = f"scale_{service}_{uuid.uuid4().hex[:8]}"
            self.database_urls[service] = create_database(server_url, name)
            self._created_databases.append(name)
        self._server_url = server_url

    def base_env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.endswith("DATABASE_URL")}
        env.update(
            PYTHONPATH=str(PROJECT_ROOT),
            AMQP_URL=self.amqp_url,
            INTERNAL_AUTH_SECRET=self.internal_secret,
            MIGRATE_ON_START="0",
            VAR_DIR=str(self.root / "var"),
            RELAY_POLL_INTERVAL="0.1",
            CONSUMER_RETRY_DELAYS="0.5,1,2",
            TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
            INBOUND_OFFER_TIMEOUT_SECONDS="3600",  # no reservation lapses during the test
            PROXY_HOPS="1",
            WEB_CONCURRENCY="1",
            GATEWAY_THREADS="16",
            LOG_LEVEL="INFO",
        )
        for service, url in self.database_urls.items():
            env[f"{service.upper()}_DATABASE_URL"] = url
        for service in SERVICES[1:]:
            env[f"{service.upper()}_URL"] = f"http://127.0.0.1:{self.balancer_ports[service]}"
        return env

    def setup(self) -> None:
        """The one-shot job: migrate every database, declare the topology, the first admin."""
        env = dict(self.base_env(), GATEWAY_ADMIN_USER="scale-admin", GATEWAY_ADMIN_PASSWORD=uuid.uuid4().hex)
        with open(self.root / "logs" / "setup.log", "ab") as log:
            subprocess.run(
                [sys.executable, "-m", "services", "setup"],
                env=env,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=300,
            )
        for service in SERVICES:
            database = Database(self.database_urls[service])
            counting_metadata.create_all(database.engine)
            database.dispose()

    def plan(self) -> None:
        """Ports and commands of every process (the balancer needs the ports before anything starts)."""
        for service in SERVICES:
            self.balancer_ports[service] = free_port()
        self.public_port = free_port()
        for service in SERVICES:
            self.web[service] = []
            for n in range(1, REPLICAS + 1):
                port = free_port()
                metrics = self.root / "metrics" / f"{service}-{n}"
                metrics.mkdir(parents=True, exist_ok=True)
                argv = [
                    str(Path(sys.executable).parent / "gunicorn"),
                    "-c",
                    str(PROJECT_ROOT / "deploy" / "gunicorn.conf.py"),
                    f"services.{service}.app:create_app()",
                ]
                env = {"SERVICE": service, "BIND": f"127.0.0.1:{port}", "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
                self.web[service].append(Replica(f"{service}-web-{n}", port, argv, env))
            self.relays[service] = [
                Replica(f"{service}-relay-{n}", 0, [sys.executable, "-m", f"services.{service}.worker", "relay"], {})
                for n in range(1, REPLICAS + 1)
            ]
            self.consumers[service] = [
                Replica(
                    f"{service}-consumer-{n}", 0, [sys.executable, "-m", "tests.scale.counting_worker", service], {}
                )
                for n in range(1, REPLICAS + 1)
            ]

    def start_balancer(self) -> None:
        self.certificate = self.root / "proxy.pem"
        key, cert = self.root / "proxy.key", self.root / "proxy.crt"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.certificate.write_text(cert.read_text() + key.read_text())
        config = self.root / "haproxy.cfg"
        config.write_text(haproxy_config(self))
        subprocess.run(["/usr/sbin/haproxy", "-c", "-q", "-f", str(config)], check=True, timeout=30)
        self.processes.start("haproxy", ["/usr/sbin/haproxy", "-db", "-f", str(config)], dict(os.environ))

    def start(self, replica: Replica) -> None:
        replica.process = self.processes.start(replica.name, replica.argv, dict(self.base_env(), **replica.env))

    def start_all(self) -> None:
        for group in (self.web, self.relays, self.consumers):
            for replicas in group.values():
                for replica in replicas:
                    self.start(replica)
        for replicas in self.web.values():
            for replica in replicas:
                wait_for_http(self.processes, replica.name, replica.process, replica.url + "/readyz", timeout=120)
        # HAProxy marks a server up after its first passing health check.
        for service, port in self.balancer_ports.items():
            url = f"https://localhost:{self.public_port}" if service == "gateway" else f"http://127.0.0.1:{port}"
            wait_until(lambda url=url: _answers_twice(url, str(self.certificate)), 60, f"the balancer of {service}")

    def kill(self, replica: Replica) -> None:
        """SIGKILL the process and its children (a gunicorn master with its workers): a crash."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replica.process.pid, signal.SIGKILL)
        replica.process.wait(10)

    def restart(self, replica: Replica, wait: bool = True) -> None:
        self.start(replica)
        if wait and replica.port:
            wait_for_http(self.processes, replica.name, replica.process, replica.url + "/readyz", timeout=120)

    def check_alive(self) -> None:
        for group in (self.web, self.relays, self.consumers):
            for replicas in group.values():
                for replica in replicas:
                    self.processes.check_alive(replica.name, replica.process)

    def stop(self) -> None:
        self.processes.stop_all()
        if self.cluster_env:
            with contextlib.suppress(Exception):
                self.cluster("stop", timeout=180)
        if self._created_databases:
            drop_databases(self._server_url, self._created_databases)


def haproxy_config(stack: Stack) -> str:
    """Round robin over each service's replicas, health-checked on /healthz; a connection refused
    by a dead replica is retried on the other (never a request that reached one: it may have
    committed). The public frontend terminates TLS and says so in the forwarded headers."""
    lines = [
        "global",
        "    maxconn 4096",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 120s",
        "    timeout server 60s",
        "    retries 3",
        "    retry-on conn-failure",
        "    option redispatch 1",
        "    timeout check 3s",
        "    default-server inter 1s fall 3 rise 1",
        # The proxy's own 503 (no replica up) asks to retry, as the services' own 503s do.
        "    http-error status 503 content-type application/problem+json hdr Retry-After 1 string"
        ' \'{"title": "Service Unavailable", "status": 503}\'',
        "frontend public",
        f"    bind 127.0.0.1:{stack.public_port} ssl crt {stack.certificate}",
        *forwarded_header_lines(),
        "    default_backend gateway",
    ]
    for service in SERVICES:
        if service != "gateway":
            lines += [
                f"frontend {service}",
                f"    bind 127.0.0.1:{stack.balancer_ports[service]}",
                f"    default_backend {service}",
            ]
        lines += [f"backend {service}", "    balance roundrobin", "    option httpchk GET /healthz"]
        lines += [f"    server r{n} 127.0.0.1:{r.port} check" for n, r in enumerate(stack.web[service], 1)]
    return "\n".join(lines) + "\n"


PRODUCTION_PROXY = PROJECT_ROOT / "deploy" / "haproxy" / "haproxy.cfg"


def forwarded_header_lines() -> list[str]:
    """The production proxy's forwarded-header lines (deploy/haproxy/haproxy.cfg), verbatim: the
    Twilio-signed webhooks of the test pass through exactly what production configures."""
    text = PRODUCTION_PROXY.read_text()
    block = text.split("# forwarded headers: begin\n", 1)[1].split("    # forwarded headers: end", 1)[0]
    lines = [line for line in block.splitlines() if line.strip()]
    assert lines, f"no forwarded-header lines in {PRODUCTION_PROXY}"
    return lines


def _answers_twice(base_url: str, verify: str) -> bool:
    """Two /healthz in a row answered through the balancer: both replicas are in its rotation."""
    try:
        return all(requests.get(base_url + "/healthz", verify=verify, timeout=2).status_code == 200 for _ in range(2))
    except requests.RequestException:
        return False


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
