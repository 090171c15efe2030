"""`make run` as a newcomer uses it: a local broker, four services under gunicorn and their
workers; the first admin signs in at the gateway, the skeleton event flows over real HTTP
through it; the services refuse anyone else; Ctrl-C stops everything. And under supervisord a
killed server, gunicorn worker or event worker comes back on its own, the others untouched."""

import json
import os
import signal
import socket
import subprocess
import time

import pytest
import requests
from port_for import get_port

from shared.config import PROJECT_ROOT, SERVICES
from tests.support.services import wait_for

ADMIN_PASSWORD = "a long first password"


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def running_system(tmp_path):
    ports = {}
    for service in SERVICES:
        ports[service] = get_port(None, list(ports.values()))
    broker_port = get_port(None)
    distribution_port = get_port(None, [broker_port, *ports.values()])
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("_DATABASE_URL") and key not in ("AMQP_URL", "DATABASE_URL")
    }
    env.update(
        {f"{service.upper()}_PORT": str(port) for service, port in ports.items()},
        VAR_DIR=str(tmp_path / "var"),
        LOCAL_RABBITMQ_PORT=str(broker_port),
        LOCAL_RABBITMQ_DIST_PORT=str(distribution_port),
        WEB_CONCURRENCY="1",
        PYTHONUNBUFFERED="1",
        GATEWAY_ADMIN_USER="first-admin",
        GATEWAY_ADMIN_PASSWORD=ADMIN_PASSWORD,
        METRICS_TOKEN="scrape-token",
    )
    log_path = tmp_path / "run.log"
    log = open(log_path, "ab")  # supervisord appends to the same file (its stdout)
    process = subprocess.Popen(
        ["scripts/run.sh"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield process, ports, broker_port, log_path, env
    finally:
        if process.poll() is None:
            # supervisord's programs run in process groups of their own: stop them through it first.
            for pid in supervised_pids(env).values():
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            os.killpg(process.pid, signal.SIGKILL)
        subprocess.run(["deploy/local-rabbitmq.sh", "stop"], cwd=PROJECT_ROOT, env=env, check=False)


def supervised_pids(env: dict) -> dict[str, int]:
    """Each program's pid as supervisord tells it (``supervisorctl status``)."""
    status = subprocess.run(
        [str(PROJECT_ROOT / ".venv/bin/supervisorctl"), "-c", "deploy/supervisord.conf", "status"],
        cwd=PROJECT_ROOT,
        env={**env, "PROJECT_DIR": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    pids = {}
    for line in status.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "RUNNING" and parts[2] == "pid":
            pids[parts[0]] = int(parts[3].rstrip(","))
    return pids


def ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    except requests.RequestException:  # not listening yet, or still loading the app
        return False


def test_make_run_starts_everything_the_event_flows_and_ctrl_c_stops_it(running_system):
    process, ports, broker_port, log_path, _env = running_system
    for service, port in ports.items():
        wait_for(lambda p=port: ready(p), timeout=90, interval=0.25, what=f"{service} ready")

    gateway = f"http://127.0.0.1:{ports['gateway']}"
    signed_in = requests.post(
        f"{gateway}/auth/sign-in",
        json={"user_id": "first-admin", "password": ADMIN_PASSWORD, "kind": "api"},
        timeout=5,
    )
    assert signed_in.status_code == 200, signed_in.text
    admin = {"Authorization": f"Bearer {signed_in.json()['token']}"}

    direct = requests.post(f"http://127.0.0.1:{ports['tickets']}/customers", json={"name": "Mallory"}, timeout=5)
    assert direct.status_code == 401, "a service refuses what the gateway did not sign"

    created = requests.post(
        f"{gateway}/api/tickets/customers",
        json={"name": "Grace Hopper", "phone": "+12025550143"},
        headers={**admin, "X-Request-ID": "walking-skeleton-1"},
        timeout=5,
    )
    assert created.status_code == 201, created.text
    customer_id = created.json()["id"]
    for service in ("callrouting", "surveys", "gateway"):
        url = (
            f"{gateway}/customers/{customer_id}"
            if service == "gateway"
            else f"{gateway}/api/{service}/customers/{customer_id}"
        )
        known = wait_for(
            lambda u=url: (r := requests.get(u, headers=admin, timeout=2)).status_code == 200 and r,
            timeout=30,
            what=f"{service} to learn the customer",
        )
        assert known.json()["name"] == "Grace Hopper"
        assert known.json()["phone"] == "+12025550143"

    # The request id travelled inside the event into each consumer's logs.
    def handled_lines():
        lines = []
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("message") == "event handled" and record.get("request_id") == "walking-skeleton-1":
                lines.append(record["service"])
        return sorted(lines)

    assert wait_for(lambda: handled_lines() == ["callrouting", "gateway", "surveys"], what="consumer log lines")

    scrape = {"Authorization": "Bearer scrape-token"}
    metrics = requests.get(f"http://127.0.0.1:{ports['tickets']}/metrics", headers=scrape, timeout=5).text
    assert 'events_published_total{event_type="customer.created"} 1.0' in metrics, "relay metrics are scraped"

    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal
    process.wait(timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(port_is_open(p) for p in (*ports.values(), broker_port)):
        time.sleep(0.2)
    assert not [p for p in (*ports.values(), broker_port) if port_is_open(p)], "everything stopped"


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def stops_everything(process, ports, broker_port) -> None:
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal
    process.wait(timeout=90)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(port_is_open(p) for p in (*ports.values(), broker_port)):
        time.sleep(0.2)
    assert not [p for p in (*ports.values(), broker_port) if port_is_open(p)], "everything stopped"


def test_a_killed_process_of_each_kind_comes_back_on_its_own_and_the_others_are_untouched(running_system):
    process, ports, broker_port, log_path, env = running_system
    for service, port in ports.items():
        wait_for(lambda p=port: ready(p), timeout=90, interval=0.25, what=f"{service} ready")
    before = wait_for(lambda: len(pids := supervised_pids(env)) == 8 and pids, timeout=30, what="eight programs")

    def restarted(name: str, old_pid: int) -> dict[str, int]:
        def back():
            now = supervised_pids(env)
            return now.get(name) not in (None, old_pid) and now

        now = wait_for(back, timeout=60, interval=0.25, what=f"{name} restarted")
        untouched = {other: pid for other, pid in before.items() if other != name}
        assert {other: now[other] for other in untouched} == untouched, "the others keep running"
        before[name] = now[name]
        return now

    # an event worker (python -m services.callrouting.worker all), killed outright
    os.kill(before["callrouting-worker"], signal.SIGKILL)
    restarted("callrouting-worker", before["callrouting-worker"])
    # a web server's gunicorn master (its worker goes with it, being in its process group)
    os.killpg(before["tickets"], signal.SIGKILL)
    restarted("tickets", before["tickets"])
    # a gunicorn worker: its master starts another one, supervisord has nothing to do
    surveys_workers = children_of(before["surveys"])
    os.kill(surveys_workers[0], signal.SIGKILL)
    wait_for(lambda: (kids := children_of(before["surveys"])) and surveys_workers[0] not in kids, what="a new worker")
    assert supervised_pids(env) == before

    for service, port in ports.items():
        wait_for(lambda p=port: ready(p), timeout=90, interval=0.25, what=f"{service} ready again")
    log = log_path.read_text(errors="replace")
    assert "exited: callrouting-worker (terminated by SIGKILL; not expected)" in log
    assert "exited: tickets (terminated by SIGKILL; not expected)" in log
    assert log.count("spawned: 'callrouting-worker'") >= 2 and log.count("spawned: 'tickets'") >= 2

    # ... and the restarted ones do their work: a customer reaches call routing through the new worker.
    signed_in = requests.post(
        f"http://127.0.0.1:{ports['gateway']}/auth/sign-in",
        json={"user_id": "first-admin", "password": ADMIN_PASSWORD, "kind": "api"},
        timeout=5,
    )
    admin = {"Authorization": f"Bearer {signed_in.json()['token']}"}
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    created = requests.post(f"{gateway}/api/tickets/customers", json={"name": "Ada"}, headers=admin, timeout=5)
    assert created.status_code == 201, created.text
    url = f"{gateway}/api/callrouting/customers/{created.json()['id']}"
    wait_for(lambda: requests.get(url, headers=admin, timeout=2).status_code == 200, timeout=30, what="the event")

    stops_everything(process, ports, broker_port)
