"""Fixtures of the mail tests: a real SMTP server (aiosmtpd) and a real IMAP server (dovecot)."""

from __future__ import annotations

import pytest

from tests.support.mailservers import Dovecot, SmtpSink


@pytest.fixture
def smtp_server():
    server = SmtpSink(auth=("desk", "desk-password"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def imap_server():
    server = Dovecot()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(imap_server):
    """The IMAP server with an empty INBOX."""
    imap = imap_server.connect()
    imap.select("INBOX")
    if imap_server.count():
        imap.store("1:*", "+FLAGS", "(\\Deleted)")
        imap.expunge()
    imap.logout()
    return imap_server
