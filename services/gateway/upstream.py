"""The services behind the gateway, as the gateway calls them.

Every call carries the signed-in user as an internal token (``shared.auth``) and the request
id; it has a connect and a read timeout and goes through the service's circuit breaker
(pybreaker): after ``UPSTREAM_BREAKER_FAILURES`` failures in a row (no connection, a timeout,
a 5xx) the service is not called at all for ``UPSTREAM_BREAKER_RESET_SECONDS``, so a dead
service costs a view nothing instead of a timeout each time. One ``requests.Session`` per
thread (the brief's rule: sessions are not shared between threads).

``fan_out`` asks several services at once under one overall deadline and says which answers
are missing instead of failing the whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import pybreaker
import requests
from flask import current_app, g, has_request_context
from requests.adapters import HTTPAdapter

from shared.auth import InternalTokens, User, acting_user
from shared.config import DEFAULT_PORTS, Settings
from shared.logs import correlation_id
from shared.metrics import UPSTREAM_CALLS

BACKENDS = ("tickets", "callrouting", "surveys")


class UpstreamUnavailable(Exception):
    """The service did not answer usefully: down, too slow, 5xx, or its breaker is open."""

    def __init__(self, service: str, reason: str, response: requests.Response | None = None):
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason
        self.response = response


class _ServerError(Exception):
    """A 5xx: counts against the breaker, and is handed back to the caller as it was."""

    def __init__(self, response: requests.Response):
        super().__init__(f"{response.status_code}")
        self.response = response


@dataclass
class Upstream:
    name: str
    base_url: str
    breaker: pybreaker.CircuitBreaker = field(repr=False)


class Upstreams:
    """The three services, with their timeouts and breakers; one per gateway process."""

    def __init__(self, settings: Settings, tokens: InternalTokens):
        self.tokens = tokens
        self.connect_timeout = float(settings.option("UPSTREAM_CONNECT_TIMEOUT", "0.5"))
        self.read_timeout = float(settings.option("UPSTREAM_READ_TIMEOUT", "5"))
        failures = int(settings.option("UPSTREAM_BREAKER_FAILURES", "5"))
        reset = float(settings.option("UPSTREAM_BREAKER_RESET_SECONDS", "10"))
        self.services: dict[str, Upstream] = {}
        for name in BACKENDS:
            port = settings.option(f"{name.upper()}_PORT", str(DEFAULT_PORTS[name]))
            url = settings.option(f"{name.upper()}_URL") or f"http://127.0.0.1:{port}"
            breaker = pybreaker.CircuitBreaker(fail_max=failures, reset_timeout=reset, name=name)
            self.services[name] = Upstream(name, url.rstrip("/"), breaker)
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=int(settings.option("UPSTREAM_FAN_OUT_THREADS", "16")))

    # -- one call --------------------------------------------------------------------------

    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # The services are reached directly, never through an environment's HTTP_PROXY; and
            # reading the environment and ~/.netrc for it was a sixth of each call's CPU.
            session.trust_env = False
            session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=8))
            session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=8))
            self._local.session = session
        return session

    def headers_for(self, user: User, request_id: str | None) -> dict[str, str]:
        headers = self.tokens.headers(user)
        if request_id:
            headers["X-Request-ID"] = request_id
        return headers

    def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        user: User | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One request to ``service``; raises ``UpstreamUnavailable`` when it cannot be had.

        A 4xx is an answer (returned); a 5xx, a timeout or no connection is a failure of the
        service and counts against its breaker.
        """
        upstream = self.services[service]
        user = user or acting_user()
        request_id = request_id or _current_request_id()
        all_headers = {**(headers or {}), **self.headers_for(user, request_id)}
        read_timeout = self.read_timeout if timeout is None else timeout

        def attempt() -> requests.Response:
            response = self.session().request(
                method,
                upstream.base_url + path,
                headers=all_headers,
                timeout=(min(self.connect_timeout, read_timeout), read_timeout),
                allow_redirects=False,
                **kwargs,
            )
            if response.status_code >= 500:
                raise _ServerError(response)
            return response

        started = time.perf_counter()
        outcome = "ok"
        try:
            return upstream.breaker.call(attempt)
        except pybreaker.CircuitBreakerError:
            outcome = "circuit_open"
            raise UpstreamUnavailable(service, "circuit open (recent failures)") from None
        except _ServerError as error:
            outcome = "server_error"
            raise UpstreamUnavailable(service, f"answered {error.response.status_code}", error.response) from None
        except requests.Timeout:
            outcome = "timeout"
            raise UpstreamUnavailable(service, "timed out") from None
        except requests.ConnectionError:
            outcome = "unreachable"
            raise UpstreamUnavailable(service, "unreachable") from None
        except requests.RequestException:
            # The answer broke off (a replica died while sending it: ChunkedEncodingError). The
            # request may have taken effect: a 503 to retry, with the same Idempotency-Key.
            outcome = "unreachable"
            raise UpstreamUnavailable(service, "broke off its answer") from None
        finally:
            UPSTREAM_CALLS.labels(service, outcome).observe(time.perf_counter() - started)

    # -- several at once -------------------------------------------------------------------

    def fan_out(self, calls: Mapping[str, Callable[[], Any]], deadline: float) -> tuple[dict[str, Any], dict[str, str]]:
        """Run ``calls`` in parallel; give up on those not done within ``deadline`` seconds.

        Each call is ``call(user, request_id)``: this request's user and id, read here in the
        request's thread. Returns (results by name, reasons by name for the missing ones).
        """
        user, request_id = acting_user(), _current_request_id()

        def run(call):
            token = correlation_id.set(request_id)
            try:
                return call(user, request_id)
            finally:
                correlation_id.reset(token)

        started = time.monotonic()
        futures = {self._pool.submit(run, call): name for name, call in calls.items()}
        _done, not_done = wait(futures, timeout=deadline)
        # A loaded machine may wake us after a call's own timeout (the deadline plus a grace) has
        # run out too: that call still ran out of the deadline, and says so.
        past_deadline = time.monotonic() - started >= deadline
        results: dict[str, Any] = {}
        missing: dict[str, str] = {}
        for future, name in futures.items():
            if future in not_done:
                future.cancel()
                missing[name] = "timed out (deadline)"
            elif (error := future.exception()) is not None:
                reason = error.reason if isinstance(error, UpstreamUnavailable) else type(error).__name__
                missing[name] = "timed out (deadline)" if reason == "timed out" and past_deadline else reason
            else:
                results[name] = future.result()
        return results, missing


def _current_request_id() -> str | None:
    if has_request_context():
        return g.get("request_id")
    return correlation_id.get()


def upstreams() -> Upstreams:
    return current_app.extensions["upstreams"]
