"""An erasure reaches a service exactly once, even when its consumer is killed mid-way (real broker).

The directory (tickets, its app and relay) erases a customer; call routing's real consumer runs in
its own process and is killed with SIGKILL while applying ``customer.erased`` (before the commit)
or after committing it (before the ack). A fresh consumer then gets the message again: the erasure
is applied once in all (counted in the handler's own transaction) and the customer's data is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from services.callrouting.models import CustomerReplica, DoNotCall, PrivacyErasure
from services.tickets.app import create_app as create_tickets
from tests.support.auth import signed_client
from tests.support.counting import applied
from tests.support.services import Running, processed_ids, wait_for

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def start_consumer(settings, env_extra, log_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "CALLROUTING_DATABASE_URL": settings.database_url,
        "AMQP_URL": settings.amqp_url,
        "CONSUMER_RETRY_DELAYS": "0.2,0.4",
        **env_extra,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.erasure_consumer"],
        env=env,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
        cwd=PROJECT_ROOT,
    )


def replica(database, customer_id):
    with database.sessions() as session:
        row = session.get(CustomerReplica, customer_id)
        return None if row is None else (row.name, row.phone, row.email)


def count(database, model, *where):
    from sqlalchemy import func, select

    with database.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.parametrize("moment", ["handling", "committed"])
def test_an_erasure_is_applied_exactly_once_when_the_consumer_is_killed_mid_way(moment, settings_factory, tmp_path):
    tickets_settings, tickets_db = settings_factory("tickets")
    settings, database = settings_factory("callrouting")
    tickets = signed_client(create_tickets(tickets_settings), "dpo-1", "privacy")
    flag, log = tmp_path / "paused", tmp_path / "consumer.log"
    running = Running()
    running.relay(tickets_db, tickets_settings)
    victim = start_consumer(settings, {"PAUSE_AT": moment, "PAUSE_FLAG": str(flag)}, log)
    survivor = None
    try:
        customer = tickets.post("/customers", json={"name": "Ada Lovelace", "phone": "+442079460958"}).get_json()
        wait_for(lambda: replica(database, customer["id"]), timeout=30, what="the customer reaching call routing")
        erased = tickets.post(f"/privacy/customers/{customer['id']}/erase")
        assert erased.status_code == 201, erased.get_json()
        wait_for(flag.exists, timeout=30, what=f"the consumer to pause while {moment}")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        assert len(applied(database)) == (1 if moment == "committed" else 0), "only a commit makes an application"

        survivor = start_consumer(settings, {}, log)
        wait_for(lambda: count(database, PrivacyErasure) == 1 and len(processed_ids(database)) == 2, timeout=30)
        if moment == "committed":
            wait_for(lambda: "duplicate" in log.read_text(), timeout=30, what="the redelivery seen as a duplicate")
        else:
            wait_for(lambda: len(applied(database)) == 1, timeout=30, what="the redelivered erasure")
        assert len(applied(database)) == 1
        assert replica(database, customer["id"]) == ("Erased customer", None, None)
        assert count(database, DoNotCall, DoNotCall.source == "erasure") == 2  # the customer, their number's hash
        assert count(database, DoNotCall, DoNotCall.phone.is_not(None)) == 0
    finally:
        for process in (victim, survivor):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
        running.close()
