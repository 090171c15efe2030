"""Settings read from the environment, once, in one place.

Every service has its own database. A service's URL comes from ``<SERVICE>_DATABASE_URL``;
failing that from ``DATABASE_URL``, which names one server for all services: its ``{service}``
placeholder (or, without one, a ``_<service>`` suffix on the database name) gives each
service a database of its own. With neither, SQLite files under ``var/`` are used.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("gateway", "tickets", "callrouting", "surveys")
DEFAULT_PORTS = {"gateway": 8000, "tickets": 8001, "callrouting": 8002, "surveys": 8003}


def _env_float_list(name: str, default: str) -> tuple[float, ...]:
    raw = os.environ.get(name, default)
    return tuple(float(part) for part in raw.split(",") if part.strip())


def var_dir() -> Path:
    path = Path(os.environ.get("VAR_DIR", PROJECT_ROOT / "var"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url_for(service: str, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    explicit = env.get(f"{service.upper()}_DATABASE_URL")
    if explicit:
        return explicit
    shared_server = env.get("DATABASE_URL")
    if shared_server:
        if "{service}" in shared_server:
            return shared_server.replace("{service}", service)
        url = make_url(shared_server)
        return url.set(database=f"{url.database}_{service}").render_as_string(hide_password=False)
    return f"sqlite:///{var_dir() / f'{service}.db'}"


# --- library-level knobs ------------------------------------------------------------------------
# Read where no ``Settings`` exist (an engine made from a bare URL, a number parsed in a model or a
# migration, a hash made in any service's handler), each time they are asked for, and still only
# here: this module is the one place that reads the environment. A process with ``Settings``
# gets the same values from ``settings.option(name)``.


def default_phone_region() -> str:
    """``DEFAULT_PHONE_REGION``: the ISO 3166 region of numbers typed without a country code (US)."""
    return os.environ.get("DEFAULT_PHONE_REGION", "US").upper()


def privacy_hash_secret() -> str | None:
    """``PRIVACY_HASH_SECRET``, else ``INTERNAL_AUTH_SECRET``: the key of phone-number hashes."""
    return os.environ.get("PRIVACY_HASH_SECRET") or os.environ.get("INTERNAL_AUTH_SECRET") or None


def sqlite_busy_timeout_ms(default: int) -> int:
    """``SQLITE_BUSY_TIMEOUT_MS``: how long SQLite waits for the write lock."""
    return int(os.environ.get("SQLITE_BUSY_TIMEOUT_MS", default))


def database_pool_mode() -> str:
    """``DATABASE_POOL_MODE``: ``transaction`` behind PgBouncer in transaction mode, else empty."""
    return os.environ.get("DATABASE_POOL_MODE", "").strip().lower()


def migrate_on_start() -> bool:
    """``MIGRATE_ON_START`` (default on): whether a web or worker process migrates as it starts."""
    return os.environ.get("MIGRATE_ON_START", "1").strip().lower() not in ("0", "false", "no", "off")


def prometheus_multiproc_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR``: where gunicorn's workers keep their metrics (prometheus_client reads it too)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


@dataclass(frozen=True)
class Settings:
    """Everything a service process needs to know about its surroundings."""

    service: str
    database_url: str
    amqp_url: str
    port: int
    exchange: str = "events"
    consumer_prefetch: int = 100
    # Delays (seconds) of the retry queues a failing message passes through before it is
    # parked; a message is therefore tried len(retry_delays) + 1 times.
    retry_delays: tuple[float, ...] = field(default=(1.0, 10.0, 60.0))
    relay_batch_size: int = 500
    relay_poll_interval: float = 0.02
    relay_claim_seconds: float = 30.0
    log_level: str = "INFO"
    # Phone webhooks (shared.webhooks). Secrets come from the environment only.
    twilio_auth_token: str | None = None
    webhook_secret: str | None = None  # HMAC key of the generic JSON webhook
    webhook_tolerance_seconds: float = 300.0  # older signed timestamps are replays
    public_base_url: str | None = None  # e.g. https://cc.example.com, as the phone system calls us
    proxy_hops: int = 0  # trusted reverse proxies whose X-Forwarded-Proto/Host we honour
    # Trust between services (shared.auth): the gateway signs each call with this secret.
    internal_auth_secret: str | None = None
    internal_token_max_age: float = 60.0
    metrics_token: str | None = None  # Prometheus' bearer token for /metrics
    max_body_bytes: int = 1024 * 1024  # a larger request body is refused with 413 before it is read
    # CALLCENTER_ENV=development relaxes what only a developer's machine may do without (a pinned
    # PUBLIC_BASE_URL for webhook signatures); anything else is production.
    development: bool = False
    options: dict[str, str] = field(default_factory=dict)  # service-specific settings, by name

    def option(self, name: str, default: str | None = None) -> str | None:
        """A service-specific setting: ``settings.option("SLA_CHECK_SECONDS", "30")``."""
        return self.options.get(name, os.environ.get(name, default))

    @classmethod
    def from_env(cls, service: str) -> Settings:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}")
        env = os.environ
        return cls(
            service=service,
            database_url=database_url_for(service),
            amqp_url=env.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
            port=int(env.get(f"{service.upper()}_PORT", DEFAULT_PORTS[service])),
            exchange=env.get("EVENTS_EXCHANGE", "events"),
            consumer_prefetch=int(env.get("CONSUMER_PREFETCH", "100")),
            retry_delays=_env_float_list("CONSUMER_RETRY_DELAYS", "1,10,60"),
            relay_batch_size=int(env.get("RELAY_BATCH_SIZE", "500")),
            relay_poll_interval=float(env.get("RELAY_POLL_INTERVAL", "0.02")),
            relay_claim_seconds=float(env.get("RELAY_CLAIM_SECONDS", "30")),
            log_level=env.get("LOG_LEVEL", "INFO"),
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
            webhook_secret=env.get("PHONE_WEBHOOK_SECRET") or None,
            webhook_tolerance_seconds=float(env.get("PHONE_WEBHOOK_TOLERANCE_SECONDS", "300")),
            public_base_url=(env.get("PUBLIC_BASE_URL") or "").rstrip("/") or None,
            proxy_hops=int(env.get("PROXY_HOPS", "0")),
            internal_auth_secret=env.get("INTERNAL_AUTH_SECRET") or None,
            internal_token_max_age=float(env.get("INTERNAL_TOKEN_MAX_AGE", "60")),
            metrics_token=env.get("METRICS_TOKEN") or None,
            max_body_bytes=int(env.get("MAX_BODY_BYTES", str(1024 * 1024))),
            development=env.get("CALLCENTER_ENV", "production") == "development",
        )


@functools.cache
def process_settings(service: str) -> Settings:
    """This process's own settings for code that has none at hand (an event handler): read from
    the environment once, not on every event. ``option()`` still reads the environment each time."""
    return Settings.from_env(service)
