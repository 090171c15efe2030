"""Periodic jobs of a worker (shared/worker.py): run at their interval, survive a failing round,
stop when asked; the built-in housekeeping purges expired idempotency keys."""

import threading
import time

from sqlalchemy import func, insert, select

from shared.backbone import idempotency_keys
from shared.worker import PeriodicJob, PeriodicJobs, purge_idempotency_keys


def test_a_job_runs_every_interval_and_a_failing_round_does_not_stop_it(settings_factory):
    settings, database = settings_factory("tickets")
    stop = threading.Event()
    rounds = {"steady": 0, "flaky": 0}

    def steady(_database, _settings):
        rounds["steady"] += 1

    def flaky(_database, _settings):
        rounds["flaky"] += 1
        raise RuntimeError("this round fails")

    jobs = {"steady": PeriodicJob(0.05, steady), "flaky": PeriodicJob(0.05, flaky)}
    thread = threading.Thread(target=PeriodicJobs(database, settings, jobs, stop).run)
    thread.start()
    deadline = time.monotonic() + 5
    while min(rounds.values()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert rounds["steady"] >= 3 and rounds["flaky"] >= 3


def test_housekeeping_purges_idempotency_keys_older_than_a_day(settings_factory):
    settings, database = settings_factory("tickets")
    now = time.time()
    with database.sessions() as session:
        session.execute(
            insert(idempotency_keys),
            [
                {"scope": "POST /x", "key": "old", "fingerprint": "f", "created_ts": now - 25 * 3600},
                {"scope": "POST /x", "key": "new", "fingerprint": "f", "created_ts": now - 3600},
            ],
        )
        session.commit()
    purge_idempotency_keys(database, settings)
    with database.sessions() as session:
        keys = session.execute(select(idempotency_keys.c.key)).scalars().all()
        assert keys == ["new"]
        assert session.execute(select(func.count()).select_from(idempotency_keys)).scalar_one() == 1
