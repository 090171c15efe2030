"""What the bench starts and stops: free ports, child processes, readiness waits, a broker.

Every child runs in a process group of its own (so a gunicorn master goes down with its
workers) and writes its output to a log file in the run's temporary directory. The bench
stops exactly the groups it started, by their id, in reverse order.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LOCAL_RABBITMQ = ROOT / "deploy" / "local-rabbitmq.sh"


class BenchError(RuntimeError):
    """The bench itself could not do what it set out to (not: a target was missed)."""


def say(message: str) -> None:
    """Progress goes to stderr; stdout is kept for the results table."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def signed_headers() -> dict[str, str]:
    """The gateway's signature for a bench supervisor: the services refuse unsigned calls.

    The bench hits the services directly (their own cost, without the gateway's hop) and
    replays one token per run, so ``isolate_environment`` gives them a long token lifetime.
    """
    from shared.auth import InternalTokens, User

    return InternalTokens(os.environ["INTERNAL_AUTH_SECRET"]).headers(User("bench-supervisor", "supervisor"))


def wrk_header_args() -> list[str]:
    return [arg for name, value in signed_headers().items() for arg in ("-H", f"{name}: {value}")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Processes:
    """The long-running children of one bench run."""

    current: Processes | None = None  # the run's, for bench/profile.py

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: list[tuple[str, subprocess.Popen]] = []
        Processes.current = self

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        try:
            process = subprocess.Popen(
                argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        self.running.append((name, process))
        return process

    def servers(self) -> list[tuple[str, subprocess.Popen]]:
        """The gunicorn masters running now."""
        return [(name, p) for name, p in self.running if Path(p.args[0]).name == "gunicorn" and p.poll() is None]

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def stop(self, process: subprocess.Popen, timeout: float = 15.0) -> None:
        """SIGTERM the child's process group, then SIGKILL it if it has not gone in time."""
        self.running = [(name, p) for name, p in self.running if p is not process]
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        # A group can outlive its leader (e.g. a gunicorn worker): make sure it is gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for _name, process in reversed(list(self.running)):
            self.stop(process)

    def check_alive(self, name: str, process: subprocess.Popen) -> None:
        if process.poll() is not None:
            raise BenchError(f"{name} exited with {process.returncode}; last lines:\n{tail(self.log_path(name))}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_logged(argv: list[str], env: dict[str, str], log: Path, timeout: float) -> None:
    """Run a command to completion, its output appended to ``log`` (a file, never a pipe:
    a daemon it starts may keep the descriptor open)."""
    with open(log, "ab") as out:
        result = subprocess.run(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({result.returncode}); last lines:\n{tail(log)}")


def wait_for_log_message(processes: Processes, name: str, process, message: str, timeout: float = 60.0) -> None:
    """Wait until the child logged a JSON line whose ``message`` is ``message``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive(name, process)
        for line in processes.log_path(name).read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                if json.loads(line).get("message") == message:
                    return
        time.sleep(0.2)
    raise BenchError(
        f"{name} did not log {message!r} within {timeout:.0f}s; last lines:\n{tail(processes.log_path(name))}"
    )


def wait_for_http(processes: Processes, name: str, process, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive(name, process)
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.2)
    raise BenchError(
        f"{name} did not answer {url} within {timeout:.0f}s; last lines:\n{tail(processes.log_path(name))}"
    )


@contextlib.contextmanager
def local_rabbitmq(var_dir: Path, log: Path):
    """A throwaway RabbitMQ node (deploy/local-rabbitmq.sh) with its data under ``var_dir``;
    yields its AMQP URL and stops it afterwards, whatever happened."""
    env = dict(
        os.environ,
        LOCAL_RABBITMQ_PORT=str(free_port()),
        LOCAL_RABBITMQ_DIST_PORT=str(free_port()),  # Erlang distribution
        VAR_DIR=str(var_dir),
    )
    try:
        say(f"starting a local RabbitMQ node on port {env['LOCAL_RABBITMQ_PORT']}")
        run_logged([str(LOCAL_RABBITMQ), "start"], env, log, timeout=180)
        url = subprocess.run(
            [str(LOCAL_RABBITMQ), "url"], env=env, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        yield url
    finally:
        say("stopping the local RabbitMQ node")
        with contextlib.suppress(subprocess.TimeoutExpired, BenchError):
            run_logged([str(LOCAL_RABBITMQ), "stop"], env, log, timeout=120)
