"""Access control over the whole URL map of the gateway and of every service.

- Without credentials every route answers 401, except an explicit allow-list (probes, the signed
  phone webhooks, survey links, sign-in): a new public route fails ``test_every_route_...``.
- Forged and expired tokens are 401, at the gateway and at a service called directly.
- The role matrix, route by route: ``ROLE_MATRIX`` names the minimum role of every non-public
  route of every app; the role just below is 403 and the minimum role gets through (through the
  gateway for the services). A route missing from the table fails the coverage test.
- Agents act only for themselves on ``/agents/<agent_id>/next-call`` and ``/state``.
- A service that is down or slow comes back as problem+json with the upstream's status.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta

from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from services.gateway import users
from shared import auth
from shared.auth import ALL_ROLES, ROLES, InternalTokens, User, is_public
from shared.problems import PROBLEM_JSON
from tests.gateway.console.access_rows import CONSOLE_ROWS

APPS = ("gateway", "tickets", "callrouting", "surveys")
AUTOMATIC = frozenset(("HEAD", "OPTIONS"))
ANY_METHOD = frozenset(("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"))

# Routes that answer without a signed-in user, and why; every other route must be 401 without one.
PUBLIC = {
    # probes
    **{(app, "/healthz"): "probe" for app in APPS},
    **{(app, "/readyz"): "probe" for app in APPS},
    # the gateway's door: sign-in, and what the phone system and customers call (checked by the service)
    ("gateway", "/auth/sign-in"): "the sign-in itself",
    ("gateway", "/sign-in"): "the console's sign-in form",
    ("gateway", "/static/console/<path:filename>"): "the console's stylesheet and script",
    ("gateway", "/static/vendor/<name>"): "htmx and Chart.js from node_modules",
    ("gateway", "/webhooks/<path:path>"): "phone webhooks, passed on; the service checks the signature",
    ("gateway", "/links/<token>"): "a customer's survey link, passed on; the signed token is checked there",
    (
        "gateway",
        "/links/unsubscribe/<token>",
    ): "a survey mail's unsubscribe link, passed on; the token is checked there",
    # the phone system's signed webhooks
    ("callrouting", "/webhooks/twilio/voice"): "Twilio signature",
    ("callrouting", "/webhooks/twilio/wait"): "Twilio signature",
    ("callrouting", "/webhooks/twilio/queue"): "Twilio signature",
    ("callrouting", "/webhooks/twilio/status"): "Twilio signature",
    ("callrouting", "/webhooks/events"): "X-Signature HMAC",
    ("surveys", "/webhooks/twilio/survey"): "Twilio signature",
    ("surveys", "/webhooks/twilio/survey/answer"): "Twilio signature",
    ("surveys", "/webhooks/twilio/survey/status"): "Twilio signature",
    # a customer's survey link
    ("surveys", "/links/<token>"): "signed, expiring, single-use token",
    ("surveys", "/links/unsubscribe/<token>"): "signed token (List-Unsubscribe)",
    # a mail provider's signed inbound-mail webhook
    ("tickets", "/webhooks/mail/inbound"): "X-Signature HMAC under MAIL_WEBHOOK_SECRET",
}

# (app, method, URL rule, minimum role) for every route that needs a signed-in user. The services'
# routes are tested through the gateway's /api/<service> front.
ROLE_MATRIX = [
    # the gateway's own routes
    ("gateway", "GET", "/api/<any(tickets, callrouting, surveys):service>/<path:path>", "agent"),
    ("gateway", "POST", "/api/<any(tickets, callrouting, surveys):service>/<path:path>", "agent"),
    ("gateway", "PUT", "/api/<any(tickets, callrouting, surveys):service>/<path:path>", "agent"),
    ("gateway", "PATCH", "/api/<any(tickets, callrouting, surveys):service>/<path:path>", "agent"),
    ("gateway", "DELETE", "/api/<any(tickets, callrouting, surveys):service>/<path:path>", "agent"),
    ("gateway", "GET", "/api/customers/<customer_id>/view", "agent"),
    ("gateway", "GET", "/api/customers/lookup", "agent"),
    ("gateway", "GET", "/api/docs", "agent"),
    ("gateway", "GET", "/api/live", "agent"),
    ("gateway", "GET", "/api/reports/daily", "supervisor"),
    ("gateway", "GET", "/auth/me", "agent"),
    ("gateway", "POST", "/auth/password", "agent"),
    ("gateway", "POST", "/auth/sign-out", "agent"),
    ("gateway", "GET", "/auth/tokens", "agent"),
    ("gateway", "POST", "/auth/tokens", "agent"),
    ("gateway", "DELETE", "/auth/tokens/<token_id>", "agent"),
    ("gateway", "GET", "/customers/<customer_id>", "agent"),
    ("gateway", "GET", "/metrics", "agent"),
    ("gateway", "GET", "/openapi.json", "agent"),
    ("gateway", "GET", "/users", "admin"),
    ("gateway", "POST", "/users", "admin"),
    ("gateway", "GET", "/users/<user_id>", "admin"),
    ("gateway", "PATCH", "/users/<user_id>", "admin"),
    # tickets
    ("tickets", "GET", "/business-calendar", "agent"),
    ("tickets", "PUT", "/business-calendar", "supervisor"),
    ("tickets", "DELETE", "/business-calendar", "supervisor"),
    ("tickets", "GET", "/customers", "agent"),
    ("tickets", "POST", "/customers", "agent"),
    ("tickets", "GET", "/customers/<customer_id>", "agent"),
    ("tickets", "PATCH", "/customers/<customer_id>", "agent"),
    ("tickets", "POST", "/customers/<customer_id>/merge", "supervisor"),
    ("tickets", "GET", "/customers/<customer_id>/overview", "agent"),
    ("tickets", "GET", "/customers/<customer_id>/purchases", "agent"),
    ("tickets", "POST", "/customers/<customer_id>/purchases", "agent"),
    ("tickets", "GET", "/customers/duplicates", "supervisor"),
    ("tickets", "GET", "/metrics", "agent"),
    ("tickets", "GET", "/openapi.json", "agent"),
    ("tickets", "GET", "/reports/daily", "supervisor"),
    ("tickets", "GET", "/reports/hygiene", "supervisor"),
    ("tickets", "GET", "/sla-policies", "agent"),
    ("tickets", "PUT", "/sla-policies/<priority>", "supervisor"),
    ("tickets", "GET", "/tickets", "agent"),
    ("tickets", "POST", "/tickets", "agent"),
    ("tickets", "GET", "/tickets/<ticket_id>", "agent"),
    ("tickets", "PATCH", "/tickets/<ticket_id>", "agent"),
    ("tickets", "GET", "/tickets/<ticket_id>/comments", "agent"),
    ("tickets", "POST", "/tickets/<ticket_id>/comments", "agent"),
    ("tickets", "GET", "/tickets/<ticket_id>/history", "agent"),
    ("tickets", "GET", "/tickets/<ticket_id>/mails", "agent"),
    ("tickets", "GET", "/tickets/<ticket_id>/attachments/<attachment_id>", "agent"),
    ("tickets", "GET", "/customers/<customer_id>/mails", "agent"),
    ("tickets", "GET", "/mail/status", "agent"),
    ("tickets", "GET", "/mail/parked", "supervisor"),
    # call routing
    ("callrouting", "GET", "/agents", "agent"),
    ("callrouting", "POST", "/agents", "supervisor"),
    ("callrouting", "GET", "/agents/<agent_id>", "agent"),
    ("callrouting", "POST", "/agents/<agent_id>/next-call", "agent"),
    ("callrouting", "GET", "/agents/<agent_id>/routing", "agent"),
    ("callrouting", "PUT", "/agents/<agent_id>/routing", "supervisor"),
    ("callrouting", "PUT", "/agents/<agent_id>/state", "agent"),
    ("callrouting", "GET", "/calls", "agent"),
    ("callrouting", "GET", "/calls/<call_id>", "agent"),
    ("callrouting", "POST", "/calls/<call_id>/wrap-up", "agent"),
    ("callrouting", "GET", "/calls/orphans", "supervisor"),
    ("callrouting", "GET", "/campaigns", "agent"),
    ("callrouting", "POST", "/campaigns", "supervisor"),
    ("callrouting", "GET", "/campaigns/<campaign_id>", "agent"),
    ("callrouting", "PATCH", "/campaigns/<campaign_id>", "supervisor"),
    ("callrouting", "GET", "/campaigns/<campaign_id>/entries", "agent"),
    ("callrouting", "POST", "/campaigns/<campaign_id>/entries", "supervisor"),
    ("callrouting", "GET", "/campaigns/<campaign_id>/report", "supervisor"),
    ("callrouting", "GET", "/customers/<customer_id>", "agent"),
    ("callrouting", "GET", "/customers/<customer_id>/contacts", "agent"),
    ("callrouting", "GET", "/do-not-call", "agent"),
    ("callrouting", "POST", "/do-not-call", "agent"),
    ("callrouting", "GET", "/entries/<entry_id>", "agent"),
    ("callrouting", "POST", "/entries/<entry_id>/outcome", "agent"),
    ("callrouting", "GET", "/live", "agent"),
    ("callrouting", "GET", "/metrics", "agent"),
    ("callrouting", "GET", "/openapi.json", "agent"),
    ("callrouting", "GET", "/queues", "agent"),
    ("callrouting", "PUT", "/queues/<name>", "supervisor"),
    ("callrouting", "GET", "/reports/daily", "supervisor"),
    ("callrouting", "GET", "/reports/staffing", "supervisor"),
    # surveys
    ("surveys", "GET", "/customers/<customer_id>", "agent"),
    ("surveys", "GET", "/customers/<customer_id>/survey-summary", "agent"),
    ("surveys", "GET", "/customers/<customer_id>/surveys", "agent"),
    ("surveys", "POST", "/links", "agent"),
    ("surveys", "POST", "/links/email", "agent"),
    ("surveys", "GET", "/metrics", "agent"),
    ("surveys", "GET", "/openapi.json", "agent"),
    ("surveys", "GET", "/responses", "agent"),
    ("surveys", "POST", "/responses", "agent"),
    ("surveys", "GET", "/survey-metrics", "supervisor"),
    ("surveys", "GET", "/templates", "agent"),
    ("surveys", "POST", "/templates", "supervisor"),
    ("surveys", "GET", "/templates/<template_id>", "agent"),
    # the console's pages and their actions (one list per screen, tests/gateway/console/access_rows.py)
    *CONSOLE_ROWS,
    # the console's mail fragments (services/gateway/console/mail.py)
    ("gateway", "GET", "/tickets/<ticket_id>/mail-thread", "agent"),
    ("gateway", "GET", "/tickets/<ticket_id>/attachments/<attachment_id>", "agent"),
    ("gateway", "GET", "/mail/note", "agent"),
]

_ARGUMENT = re.compile(r"<(?:(?P<converter>[a-z]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
# Values for URL arguments: the call routing's ids of agents are the users' ids (filled in per user).
_PLACEHOLDERS = {"service": "tickets", "path": "sla-policies", "priority": "normal", "name": "default", "token": "x"}


def fill(rule: str, user_id: str = "nobody") -> str:
    """The URL rule with a placeholder for each argument (an unknown id: a 404 at worst)."""

    def value(match: re.Match) -> str:
        name = match["name"]
        if name == "agent_id":
            return user_id
        return _PLACEHOLDERS.get(name, str(uuid.uuid4()))

    return _ARGUMENT.sub(value, rule)


def app_of(stack, name: str):
    return stack.gateway if name == "gateway" else stack.servers[name].app


def routes(app):
    """(rule, method, view) of every route of ``app``, HEAD and OPTIONS included."""
    for url_rule in app.url_map.iter_rules():
        view = app.view_functions[url_rule.endpoint]
        for method in sorted(url_rule.methods):
            yield url_rule.rule, method, view


def ask(client, method: str, url: str, headers=None):
    response = client.open(url, method=method, headers=headers or {}, json={} if method in auth.WRITES else None)
    status, content_type = response.status_code, response.headers.get("Content-Type", "")
    body = b"" if content_type.startswith("text/event-stream") else response.get_data()
    response.close()  # a stream (/api/live) ends here, unread
    return status, content_type, body


# --- without credentials --------------------------------------------------------------------------


def test_every_route_of_every_app_answers_401_without_credentials_except_the_allow_list(stack):
    answered = {}
    for name in APPS:
        app = app_of(stack, name)
        client = app.test_client()
        for rule, method, view in routes(app):
            status, content_type, body = ask(client, method, fill(rule))
            answered[(name, rule, method)] = status
            if (name, rule) in PUBLIC:
                assert is_public(view), f"{name} {rule} is allow-listed but its view is not marked public"
                continue
            if getattr(view, "console_page", False) and method == "GET":
                # A console page sends a person to the sign-in form and back: a redirect, not a 401.
                assert status == 303, f"console page {rule} answered {status} without credentials"
                answered[(name, rule, method)] = 401
                continue
            assert status == 401, f"{name} {method} {rule} answered {status} without credentials"
            if getattr(view, "console_page", False):
                continue  # an htmx action: 401 with HX-Redirect to the sign-in form
            if method != "HEAD":
                assert content_type == PROBLEM_JSON and b"Traceback" not in body, (name, method, rule)
    public_routes = {(name, rule) for (name, rule, _method), status in answered.items() if status != 401}
    assert public_routes <= set(PUBLIC), f"new public routes: {public_routes - set(PUBLIC)}"
    mapped = {(name, rule) for (name, rule, _method) in answered}
    assert set(PUBLIC) <= mapped, f"allow-listed routes that no longer exist: {set(PUBLIC) - mapped}"


# Routes of customer data protection (services/*/privacy.py): which of every role may pass. The
# privacy role ranks as an agent elsewhere; admins may do what it may.
_SUPERVISING = {"supervisor", "admin", "privacy"}
_PRIVACY = {"privacy", "admin"}
PRIVACY_MATRIX = [
    ("gateway", "GET", "/api/customers/<customer_id>/export", _PRIVACY),
    ("gateway", "POST", "/api/customers/<customer_id>/erase", _PRIVACY),
    ("gateway", "POST", "/customers/<customer_id>/erase", _PRIVACY),  # the console's confirmed erasure
    ("gateway", "GET", "/api/privacy/requests", _SUPERVISING),
    ("gateway", "GET", "/api/privacy/requests/<request_id>", _SUPERVISING),
    ("gateway", "GET", "/api/audit", {"admin"}),
    ("tickets", "POST", "/privacy/customers/<customer_id>/erase", _PRIVACY),
    ("tickets", "GET", "/privacy/requests", _SUPERVISING),
    ("tickets", "GET", "/privacy/requests/<request_id>", _SUPERVISING),
] + [
    row
    for service in ("tickets", "callrouting", "surveys")
    for row in (
        (service, "GET", "/privacy/customers/<customer_id>/export", _PRIVACY),
        (service, "GET", "/privacy/erasures", _SUPERVISING),
    )
]


def test_the_role_matrix_names_every_route_that_needs_a_user_and_no_other(stack):
    needing_a_user = set()
    for name in APPS:
        for rule, method, view in routes(app_of(stack, name)):
            if method not in AUTOMATIC and not is_public(view):
                needing_a_user.add((name, method, rule))
    listed = {(name, method, rule) for name, method, rule, _role in ROLE_MATRIX + PRIVACY_MATRIX}
    assert len(listed) == len(ROLE_MATRIX) + len(PRIVACY_MATRIX), "a route is listed twice"
    assert needing_a_user - listed == set(), "routes without a row in ROLE_MATRIX"
    assert listed - needing_a_user == set(), "rows of ROLE_MATRIX for routes that do not exist (or are public)"


# --- forged and expired credentials ----------------------------------------------------------------


def test_a_forged_or_expired_bearer_token_is_401_at_the_gateway(stack):
    client = stack.client
    valid = stack.bearer("agent-7", "agent")
    assert client.get("/api/tickets/sla-policies", headers=valid).status_code == 200
    forged = {"Authorization": "Bearer " + valid["Authorization"][7:-4] + "AAAA"}
    with stack.gateway_database.sessions() as session:
        expired = users.issue_token(session, "agent-7", "api", timedelta(seconds=-1))
        session.commit()
    for headers in (forged, {"Authorization": f"Bearer {expired}"}, {"Authorization": "Bearer "}, {}):
        refused = client.get("/api/tickets/sla-policies", headers=headers)
        assert refused.status_code == 401 and refused.headers["Content-Type"] == PROBLEM_JSON, headers
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")


def _past_token(secret: str, user: User, seconds_ago: float) -> str:
    """An internal token signed with the right secret ``seconds_ago`` (itsdangerous' own timestamp)."""

    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - seconds_ago)

    return URLSafeTimedSerializer(secret, salt=auth._SALT, signer=PastSigner).dumps([user.id, user.role])


def test_a_service_called_directly_refuses_missing_forged_and_expired_internal_tokens(stack):
    secret = stack.settings["tickets"].internal_auth_secret
    admin = User("mallory", "admin")
    fresh = InternalTokens(secret).sign(admin)
    forged = InternalTokens("not-the-secret").sign(admin)
    expired = _past_token(secret, admin, seconds_ago=stack.settings["tickets"].internal_token_max_age + 5)
    tampered = fresh[:-3] + ("AAA" if not fresh.endswith("AAA") else "BBB")
    for service in ("tickets", "callrouting", "surveys"):
        client = stack.servers[service].app.test_client()
        assert client.get("/openapi.json", headers={auth.INTERNAL_TOKEN_HEADER: fresh}).status_code == 200
        for token in (None, forged, expired, tampered, "", "garbage"):
            headers = {} if token is None else {auth.INTERNAL_TOKEN_HEADER: token}
            refused = client.get("/openapi.json", headers=headers)
            assert refused.status_code == 401 and refused.headers["Content-Type"] == PROBLEM_JSON, (service, token)


def test_a_client_cannot_pass_its_own_internal_token_through_the_front(stack):
    # An agent's request carrying an admin's internal token of its own: the gateway signs over it.
    secret = stack.settings["tickets"].internal_auth_secret
    smuggled = {auth.INTERNAL_TOKEN_HEADER: InternalTokens(secret).sign(User("root", "admin"))}
    answer = stack.client.get("/api/tickets/customers/duplicates", headers={**stack.bearer("agent-7"), **smuggled})
    assert answer.status_code == 403
    assert stack.client.get("/api/tickets/customers/duplicates", headers=smuggled).status_code == 401


# --- the role matrix ----------------------------------------------------------------------------------


def test_the_role_matrix_route_by_route(stack):
    """For each row: the role just below the minimum is 403; the minimum role gets past the checks."""
    ids = {role: f"matrix-{role}" for role in ROLES}
    for role, user_id in ids.items():
        stack.user(user_id, role)
    client = stack.client
    wrong = []
    for app, method, rule, minimum in ROLE_MATRIX:
        below = ROLES[ROLES.index(minimum) - 1] if minimum != ROLES[0] else None
        for role in filter(None, (below, minimum)):
            url = fill(rule, ids[role])
            if app != "gateway":
                url = f"/api/{app}{url}"
            status, _content_type, body = ask(client, method, url, stack.bearer(ids[role], role))
            if role == below and status != 403:
                wrong.append(f"{role} {method} {url} ({app} {rule}) answered {status}, not 403")
            if role == minimum and (status in (401, 403) or status >= 500):
                wrong.append(f"{role} {method} {url} ({app} {rule}) answered {status}: {body[:200]!r}")
    assert not wrong, "\n".join(wrong)


def test_the_privacy_routes_let_exactly_their_roles_pass(stack):
    ids = {role: f"matrix-{role}" for role in ALL_ROLES}
    client = stack.client
    wrong = []
    for app, method, rule, allowed in PRIVACY_MATRIX:
        for role in ALL_ROLES:
            url = fill(rule, ids[role]).replace("<request_id>", "no-such-request")
            url = url if app == "gateway" else f"/api/{app}{url}"
            status, _content_type, body = ask(client, method, url, stack.bearer(ids[role], role))
            if role in allowed and (status in (401, 403) or (status >= 500 and status != 503)):
                wrong.append(f"{role} {method} {url} answered {status}: {body[:200]!r}")
            if role not in allowed and status != 403:
                wrong.append(f"{role} {method} {url} answered {status}, not 403")
    assert not wrong, "\n".join(wrong)


def test_an_agent_may_use_only_their_own_next_call_and_state(stack):
    client = stack.client
    supervisor = stack.bearer("sue", "supervisor")
    for agent_id in ("agent-7", "agent-8"):
        registered = client.post("/api/callrouting/agents", json={"id": agent_id, "name": agent_id}, headers=supervisor)
        assert registered.status_code in (200, 201), registered.get_json()
    seven = stack.bearer("agent-7", "agent")
    own_state = client.put("/api/callrouting/agents/agent-7/state", json={"state": "available"}, headers=seven)
    assert own_state.status_code == 200, own_state.get_json()
    own_next = client.post("/api/callrouting/agents/agent-7/next-call", headers=seven)
    assert own_next.status_code not in (401, 403)
    others_state = client.put("/api/callrouting/agents/agent-8/state", json={"state": "available"}, headers=seven)
    others_next = client.post("/api/callrouting/agents/agent-8/next-call", headers=seven)
    assert others_state.status_code == others_next.status_code == 403
    assert "themselves" in others_state.get_json()["detail"]
    for_someone = client.put("/api/callrouting/agents/agent-8/state", json={"state": "available"}, headers=supervisor)
    assert for_someone.status_code == 200


def test_every_write_naming_an_agent_takes_the_signed_in_agent_unless_a_supervisor_names_one(stack):
    """Survey responses, survey links and call outcomes (wrap-ups: test_webhooks_inbound; states and
    next calls: above): an agent naming a colleague is 403 and nothing is stored; naming nobody
    means themselves; a supervisor or admin names whom they act for."""
    client = stack.client
    seven = stack.bearer("agent-7", "agent")
    customer = str(uuid.uuid4())
    answers = {"product": 2, "service": 2, "purchase": 2, "recommend_product": 2, "recommend_store": 2}
    body = {"customer_id": customer, "channel": "agent", "answers": answers}

    as_colleague = client.post("/api/surveys/responses", json={**body, "agent_id": "agent-8"}, headers=seven)
    assert as_colleague.status_code == 403, as_colleague.get_json()
    assert "own name" in as_colleague.get_json()["detail"]
    outcome = {"agent_id": "agent-8", "outcome": "reached"}
    entry = str(uuid.uuid4())
    assert client.post(f"/api/callrouting/entries/{entry}/outcome", json=outcome, headers=seven).status_code == 403
    assert client.get(f"/api/surveys/responses?customer_id={customer}", headers=seven).get_json()["items"] == []

    own = client.post("/api/surveys/responses", json=body, headers=seven)
    assert own.status_code == 201, own.get_json()
    for role in ("supervisor", "admin"):
        named = client.post(
            "/api/surveys/responses",
            json={**body, "agent_id": "agent-8", "call_id": f"CA-{role}"},
            headers=stack.bearer(f"{role}-1", role),
        )
        assert named.status_code == 201, named.get_json()
    stored = client.get(f"/api/surveys/responses?customer_id={customer}", headers=seven).get_json()["items"]
    assert sorted(response["agent_id"] for response in stored) == ["agent-7", "agent-8", "agent-8"]


# --- upstream errors ------------------------------------------------------------------------------------


def _upstream_problem(answer, status: int, service: str) -> dict:
    assert answer.status_code == status and answer.headers["Content-Type"] == PROBLEM_JSON
    body = answer.get_json()
    assert body["status"] == status and body["service"] == service and service in body["detail"]
    assert "Traceback" not in answer.get_data(as_text=True)
    return body


def test_a_stopped_service_is_a_503_problem_naming_it_and_its_breaker_then_answers_at_once(stack):
    agent = stack.bearer("agent-7")
    stack.servers["surveys"].stop()
    body = _upstream_problem(stack.client.get("/api/surveys/templates", headers=agent), 503, "surveys")
    assert "unreachable" in body["detail"]
    for _ in range(6):  # UPSTREAM_BREAKER_FAILURES (5) failures in a row open the breaker
        stack.client.get("/api/surveys/templates", headers=agent)
    opened = stack.client.get("/api/surveys/templates", headers=agent)
    assert "circuit open" in _upstream_problem(opened, 503, "surveys")["detail"]
    assert opened.headers["Retry-After"]
    assert stack.client.get("/api/tickets/sla-policies", headers=agent).status_code == 200  # the others still answer


def test_a_slow_service_is_a_504_problem_after_the_read_timeout(stack):
    agent = stack.bearer("agent-7")
    stack.gateway.extensions["upstreams"].read_timeout = 0.3
    stack.servers["tickets"].delay = 1.0
    started = time.monotonic()
    answer = stack.client.get("/api/tickets/sla-policies", headers=agent)
    assert time.monotonic() - started < 0.9
    assert "timed out" in _upstream_problem(answer, 504, "tickets")["detail"]


def test_a_public_route_of_a_stopped_service_is_a_503_problem_too(stack):
    stack.servers["callrouting"].stop()
    stack.servers["surveys"].stop()
    # signed (the gateway refuses an unsigned webhook itself); whether it verifies is the service's to say
    signed = {"X-Twilio-Signature": "c2lnbmVk"}
    _upstream_problem(
        stack.client.post("/webhooks/twilio/voice", data={"CallSid": "CA1"}, headers=signed), 503, "callrouting"
    )
    _upstream_problem(stack.client.get("/links/x"), 503, "surveys")
