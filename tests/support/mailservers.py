"""Real mail servers for the tests: an SMTP server (aiosmtpd) that keeps what it received, and a
throwaway IMAP server (Debian's dovecot-imapd) on a free port with one mailbox.

Both are started by fixtures (tests/tickets/conftest.py) the way pytest-rabbitmq starts the
broker: their own ports, their own directories, stopped afterwards.
"""

from __future__ import annotations

import email
import email.policy
import grp
import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Collect:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        with self.sink.lock:
            self.sink.received.append(
                {
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "message": email.message_from_bytes(envelope.content, policy=email.policy.default),
                }
            )
        return "250 OK"


class SmtpSink:
    """An aiosmtpd server on a free port; ``received`` holds each mail with its envelope.

    ``stop()`` and ``start()`` take it down and bring it back on the same port (the worker's
    retries are tested against a server that is really unreachable in between)."""

    def __init__(self, auth: tuple[str, str] | None = None, tls: str | None = None, certificate=None):
        self.port = free_port()
        self.received: list[dict] = []
        self.lock = threading.Lock()
        self.auth = auth
        self.tls = tls  # None, "starttls" (required before AUTH/MAIL) or "tls" (implicit, from the first byte)
        self.certificate = certificate  # (certificate file, key file)
        self.controller: Controller | None = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (
            isinstance(auth_data, LoginPassword)
            and self.auth is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.auth
        )
        return AuthResult(success=ok)

    def start(self) -> None:
        options = {}
        if self.auth:
            # aiosmtpd counts only STARTTLS as TLS for AUTH; an implicit-TLS session is encrypted from the start.
            require_tls = self.tls == "starttls"
            options = {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": require_tls}
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.certificate)
            if self.tls == "starttls":
                options.update(tls_context=context, require_starttls=True)
            else:
                options.update(ssl_context=context)
        self.controller = Controller(_Collect(self), hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def messages(self) -> list:
        with self.lock:
            return [entry["message"] for entry in self.received]


def self_signed_certificate(directory: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 (and its key), made with the openssl command; trust it as the CA."""
    certificate, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)),
        ],
        check=True,
        capture_output=True,
    )
    return str(certificate), str(key)


DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
first_valid_uid = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


class Dovecot:
    """A dovecot IMAP server of its own: config, users and maildirs under ``root`` (by default a
    fresh directory in /tmp: pytest's own tmp_path parents are 0700, and dovecot's unprivileged
    processes must reach into it)."""

    def __init__(self, root: Path | None = None, user: str = "support", password: str = "secret"):
        self.root = root or Path(tempfile.mkdtemp(prefix="callcenter-dovecot-"))
        self.user, self.password = user, password
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        # Dovecot's login processes refuse to run as root: as root (CI), its package's own
        # unprivileged users run them and own the mailbox; otherwise the current user does.
        if os.getuid() == 0:
            internal, login = pwd.getpwnam("dovecot"), pwd.getpwnam("dovenull")
        else:
            internal = login = pwd.getpwuid(os.getuid())
        uid, gid = internal.pw_uid, internal.pw_gid
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)  # dovecot's own users pass through to base_dir and the users file
        for name in ("run", "state", "mail", "home"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        for name in ("mail", "home"):
            os.chown(self.root / name, uid, gid)
        (self.root / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        conf = self.root / "dovecot.conf"
        conf.write_text(
            DOVECOT_CONF.format(
                root=self.root,
                port=self.port,
                uid=uid,
                gid=gid,
                user=internal.pw_name,
                group=grp.getgrgid(gid).gr_name,
                login_user=login.pw_name,
            )
        )
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.root / "dovecot.log").read_text() if (self.root / "dovecot.log").exists() else ""
                raise RuntimeError(f"dovecot exited: {self.process.stdout.read().decode()} {log}")
            try:
                with self.connect() as imap:
                    imap.logout()
                return
            except (OSError, imaplib.IMAP4.error):
                time.sleep(0.1)
        raise RuntimeError("dovecot did not start listening")

    def stop(self, remove: bool = True) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def connect(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=5)
        imap.login(self.user, self.password)
        return imap

    def deliver(self, raw: bytes) -> None:
        """Put a mail into the INBOX, as the mail system's delivery would."""
        imap = self.connect()
        try:
            imap.append("INBOX", None, None, raw)
        finally:
            imap.logout()

    def count(self, criterion: str = "ALL") -> int:
        imap = self.connect()
        try:
            imap.select("INBOX")
            _, data = imap.search(None, criterion)
            return len(data[0].split())
        finally:
            imap.logout()
