"""``BENCH_PROFILE=<dir>``: where the time of a measured HTTP run goes, sampled by py-spy.

While wrk measures (not during its warm-up), every gunicorn server the bench is running is
sampled with ``py-spy record --subprocesses`` (its workers included), and for each server
``<dir>/<scenario>.txt`` gets the CPU time its processes used per request of the run (read from
the kernel, so py-spy's own cost is not in it) and the top frames: by self time (the frame
running) and by total time (the frame anywhere on the stack), as a share of the samples. The raw stacks go
beside it (``.raw``, py-spy's collapsed format, which flamegraph tools read).

Read the frames with care: sampled without stopping the processes (``--nonblocking``), py-spy
counts a worker waiting in a socket call (gunicorn's ``close_graceful``, a ``recv``) or a sleep as
busy, so the CPU time per request is the figure to trust, and the frames say where to look.

py-spy is a profiler, not a dependency of the services: ``.venv/bin/pip install py-spy``. It
needs ptrace (root, or ``kernel.yama.ptrace_scope=0``). The sampling costs some CPU, so the
figures of a profiled run are not the ones to quote.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil

from bench.procs import VENV_BIN, BenchError, Processes, say

RATE_HZ = 250
TOP = 15


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]


def _cpu_seconds(server: subprocess.Popen) -> float:
    """User + system time of a gunicorn master and its workers so far."""
    try:
        master = psutil.Process(server.pid)
        processes = [master, *master.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


class Sampling:
    requests = 0  # set by the caller once wrk has answered


@contextlib.contextmanager
def sampled(scenario: str, duration_s: int) -> Iterator[Sampling]:
    sampling = Sampling()
    directory = os.environ.get("BENCH_PROFILE")
    if not directory:
        yield sampling
        return
    spy = VENV_BIN / "py-spy"
    if not spy.exists():
        raise BenchError("BENCH_PROFILE needs py-spy: .venv/bin/pip install py-spy")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    recorders = {}
    for name, server in Processes.current.servers() if Processes.current else []:
        raw = out / f"{_slug(scenario)}--{name}.raw"
        argv = [str(spy), "record", "--subprocesses", "--nonblocking", "-r", str(RATE_HZ), "-d", str(duration_s)]
        argv += ["-f", "raw", "-o", str(raw), "-p", str(server.pid)]
        recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        recorders[name] = (raw, recorder, server, _cpu_seconds(server))
    try:
        yield sampling
    finally:
        report = [f"# {scenario}: py-spy at {RATE_HZ} Hz over {duration_s} s, every worker of each server"]
        report.append(f"{sampling.requests} requests\n")
        for name, (raw, recorder, server, cpu_before) in recorders.items():
            cpu = _cpu_seconds(server) - cpu_before
            per_request = f", {1000 * cpu / sampling.requests:.2f} ms a request" if sampling.requests else ""
            recorder.wait(duration_s + 30)
            report.append(f"{name}: CPU {cpu:.2f} s{per_request}")
            report.append(summary(name, raw))
        path = out / f"{_slug(scenario)}.txt"
        path.write_text("\n".join(report))
        say(f"profile of {scenario}: {path}")


def summary(name: str, raw: Path) -> str:
    """The top frames by self and by total samples of py-spy's collapsed stacks."""
    own, anywhere, total = Counter(), Counter(), 0
    with contextlib.suppress(FileNotFoundError):
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = stack.split(";")[1:]  # the first is the process
            samples = int(count)
            total += samples
            if frames:
                own[frames[-1]] += samples
            for frame in set(frames):
                anywhere[frame] += samples
    if not total:
        return f"## {name}: no samples\n"
    lines = [f"## {name}: {total} samples", "self:"]
    lines += [f"  {100 * n / total:5.1f} %  {frame}" for frame, n in own.most_common(TOP)]
    lines.append("total:")
    lines += [f"  {100 * n / total:5.1f} %  {frame}" for frame, n in anywhere.most_common(TOP * 2)]
    return "\n".join(lines) + "\n"
