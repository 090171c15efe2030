"""schemathesis over every OpenAPI spec, through the gateway, against the real services.

The three services run as real HTTP servers on their own databases (``tests.gateway.conftest``),
the gateway in front of them; every operation of every spec (the gateway's own and each
service's, read through the front at ``/api/<service>/openapi.json``) gets a bounded number of
generated requests with a signed-in token per role. The phone webhooks get validly signed bodies
(Twilio's signature and the JSON webhook's HMAC) and the survey links validly signed tokens, so
the fuzzer reaches the code behind the signature check.

The run is a test: any 5xx, any status code or content type the spec does not declare, and any
answer that does not conform to its own schema is a finding, and one finding fails it. It prints
the operations, requests and findings. ``FUZZ_EXAMPLES`` (per operation and role) bounds it.
"""

from __future__ import annotations

import collections
import json
import os
import time
from urllib.parse import urlencode

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from twilio.request_validator import RequestValidator

from shared.webhooks import SIGNATURE_HEADER, TWILIO_SIGNATURE_HEADER, sign_json
from tests.gateway.conftest import BACKENDS, ServiceServer, Stack
from tests.support.services import Running

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
ROLES = ("agent", "supervisor", "admin")
WEBHOOK_SECRET = "fuzz-webhook-secret"
TWILIO_TOKEN = "fuzz-twilio-token"
LINK_SECRET = "fuzz-link-secret"
MAIL_SECRET = "fuzz-mail-webhook-secret"
PUBLIC_URL = "http://localhost"  # where the werkzeug test client calls the gateway
PUBLIC_PREFIXES = ("/webhooks/", "/links/")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SPECS = {"gateway": ("/openapi.json", ""), **{name: (f"/api/{name}/openapi.json", f"/api/{name}") for name in BACKENDS}}
# Nothing here is fuzzed: streams never end, and signing out would spend the token mid-run.
SKIPPED = {("GET", "/live"), ("GET", "/live/stream"), ("POST", "/auth/sign-out")}


@pytest.fixture
def fuzz_stack(settings_factory):
    running = Running()
    servers, databases, all_settings = {}, {}, {}
    # The phone system calls the gateway's public URL (pinned, as outside development): the
    # services check Twilio's signatures against it.
    public = {"public_base_url": PUBLIC_URL}
    options = {
        "callrouting": {"webhook_secret": WEBHOOK_SECRET, "twilio_auth_token": TWILIO_TOKEN, **public},
        "surveys": {"twilio_auth_token": TWILIO_TOKEN, "options": {"SURVEY_LINK_SECRET": LINK_SECRET}, **public},
        "tickets": {"options": {"MAIL_WEBHOOK_SECRET": MAIL_SECRET}, **public},
    }
    import importlib

    from services.gateway.app import create_app as create_gateway

    for service in BACKENDS:
        service_settings, database = settings_factory(service, **options.get(service, {}))
        running.relay(database, service_settings)
        running.consumer(database, service_settings)
        app = importlib.import_module(f"services.{service}.app").create_app(service_settings)
        servers[service] = ServiceServer(app)
        databases[service] = database
        all_settings[service] = service_settings
    upstream = {f"{name.upper()}_URL": server.url for name, server in servers.items()}
    gateway_settings, gateway_database = settings_factory("gateway", options=upstream, **public)
    running.relay(gateway_database, gateway_settings)
    running.consumer(gateway_database, gateway_settings)
    gateway = create_gateway(gateway_settings)
    yield Stack(gateway, gateway_database, servers, databases, all_settings)
    hub = gateway.extensions.get("live_hub")
    if hub is not None:
        hub.close()
    for server in servers.values():
        server.stop()
    running.close()


def load_schema(stack: Stack, service: str):
    spec_path, prefix = SPECS[service]
    answer = stack.client.get(spec_path, headers=stack.bearer("fuzz-admin", "admin"))
    assert answer.status_code == 200, answer.text
    raw = answer.get_json()
    raw["servers"] = [{"url": prefix or "/"}]
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = stack.gateway
    return schema


def survey_links(stack: Stack, headers) -> list[str]:
    """A few validly signed survey link tokens (a customer, a template, links issued)."""
    client = stack.client
    customer = client.post("/api/tickets/customers", json={"name": "Fuzz Customer"}, headers=headers)
    assert customer.status_code == 201, customer.text
    customer_id = customer.get_json()["id"]

    deadline = time.monotonic() + 20
    while client.get(f"/api/surveys/customers/{customer_id}/surveys", headers=headers).status_code == 404:
        assert time.monotonic() < deadline, "surveys never learned the customer"
        time.sleep(0.1)
    template = client.get("/api/surveys/templates", headers=headers).get_json()["items"][0]
    tokens = []
    for _ in range(3):
        link = client.post(
            "/api/surveys/links",
            json={"customer_id": customer_id, "template_id": template["id"]},
            headers=headers,
        )
        assert link.status_code == 201, link.text
        tokens.append(link.get_json()["token"])
    return tokens


def sign_case(case, tokens: list[str], counter: collections.Counter) -> dict:
    """Extra ``case.call`` arguments for a webhook or survey link: sent to the gateway's public
    front (``/webhooks/...``, ``/links/...``, not through ``/api/<service>``), validly signed."""
    path = case.operation.path
    if not path.startswith(PUBLIC_PREFIXES):
        return {}
    extra: dict = {"base_url": PUBLIC_URL}
    if "token" in (case.path_parameters or {}) and path.startswith("/links/"):
        case.path_parameters["token"] = tokens[counter["links"] % len(tokens)]
        counter["links"] += 1
    json_secrets = {"/webhooks/events": WEBHOOK_SECRET, "/webhooks/mail/inbound": MAIL_SECRET}
    if path in json_secrets and case.method.upper() == "POST":
        raw = json.dumps(case.body).encode() if case.body is not None else b""
        # each request signed at another second: the same generated body twice is no replay
        counter["signed"] += 1
        signature = sign_json(json_secrets[path], raw, int(time.time()) - counter["signed"] % 240)
        extra.update(data=raw, headers={SIGNATURE_HEADER: signature, "Content-Type": "application/json"})
    elif path.startswith("/webhooks/twilio"):
        form = {}
        if case.method.upper() == "POST" and isinstance(case.body, dict):
            form = {str(key): str(value) for key, value in case.body.items()}
            extra["data"] = form
        query = urlencode(case.query or {}, doseq=True)
        url = f"{PUBLIC_URL}{path}" + (f"?{query}" if query else "")
        extra["headers"] = {TWILIO_SIGNATURE_HEADER: RequestValidator(TWILIO_TOKEN).compute_signature(url, form)}
    return extra


def fuzz_operation(operation, service, role, token, links, counter, findings, statuses) -> None:
    """``EXAMPLES`` generated requests to one operation as ``role``; what fails goes into ``findings``."""
    auth = {"Authorization": f"Bearer {token}"}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case):
        extra = sign_case(case, links, counter)
        headers = {**auth, **extra.pop("headers", {})}
        counter["requests"] += 1
        try:
            response = case.call(headers=headers, **extra)
        except Exception as error:  # an exception escaping the app is a finding too
            key = (service, case.method, case.operation.path, type(error).__name__)
            findings.setdefault(key, f"{role}: {type(error).__name__}: {error}"[:500])
            return
        if case.operation.path.startswith(("/webhooks", "/links")):
            # how far the signed requests got: a 403 is a signature the service refused
            statuses[f"{case.method} {case.operation.path} {response.status_code}"] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, FailureGroup) as failure:  # schemathesis raises a group of failures
            for each in getattr(failure, "exceptions", [failure]):
                key = (service, case.method, case.operation.path, getattr(each, "title", type(each).__name__))
                findings.setdefault(key, f"{role} {response.status_code} {str(each)[:300]} | {response.text[:300]}")

    try:
        run()
    except Exception as error:  # the spec itself is unusable for this operation (an invalid schema)
        key = (service, operation.method.upper(), operation.path, type(error).__name__)
        findings.setdefault(key, f"{role}: {str(error)[:400]}")


@pytest.mark.timeout(900)
def test_every_operation_answers_within_its_spec_and_never_5xx(fuzz_stack):
    stack = fuzz_stack
    tokens = {role: stack.user(f"fuzz-{role}", role) for role in ROLES}
    links = survey_links(stack, {"Authorization": f"Bearer {tokens['admin']}"})
    counter = collections.Counter()
    statuses = collections.Counter()
    findings: dict[tuple, str] = {}
    operations = 0
    for service in SPECS:
        schema = load_schema(stack, service)
        for result in schema.get_all_operations():
            operation = result.ok()
            if (operation.method.upper(), operation.path) in SKIPPED:
                continue
            operations += 1
            for role in ROLES:
                fuzz_operation(operation, service, role, tokens[role], links, counter, findings, statuses)
    summary = f"fuzz: {operations} operations, {counter['requests']} requests, {len(findings)} findings"
    print(summary)
    print("signed requests:", ", ".join(f"{key}: {n}" for key, n in sorted(statuses.items())))
    for key, detail in sorted(findings.items()):
        print(" ", *key, "->", detail)
    assert not findings, summary
