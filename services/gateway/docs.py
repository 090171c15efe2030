"""The documentation page: one HTML page linking the gateway's OpenAPI spec and every service's.

The services' specs are read through the front (``/api/<service>/openapi.json``), so every path
in them is under that prefix here. The page needs a signed-in user like everything else; every
text on it is escaped.
"""

from __future__ import annotations

from html import escape

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from shared.auth import acting_user

docs = Blueprint("docs", __name__, description="The documentation page linking every service's OpenAPI spec.")

# Any signed-in user may read the documentation.
ACCESS: list = []

SPECS = (
    ("Gateway", "/openapi.json", "", "sign-in and users, the customer view, the daily report, live updates"),
    ("Tickets", "/api/tickets/openapi.json", "/api/tickets", "the customer directory and the service desk"),
    (
        "Call routing",
        "/api/callrouting/openapi.json",
        "/api/callrouting",
        "call lists, inbound routing and agent states",
    ),
    ("Surveys", "/api/surveys/openapi.json", "/api/surveys", "follow-up surveys, their metrics and the closed loop"),
)

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
<h1>{title}</h1>
<p>Signed in as {user} ({role}). Every API is reached through this gateway; a service's paths are under its
prefix. Authenticate with <code>Authorization: Bearer &lt;token&gt;</code> (or the console's cookie and
<code>X-CSRF-Token</code> on writes).</p>
<table>
<thead><tr><th>API</th><th>Specification</th><th>Paths under</th><th>What</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<p>Phone webhooks: <code>/webhooks/twilio/...</code> and <code>/webhooks/events</code> (signed by the phone system);
survey links: <code>/links/&lt;token&gt;</code>.</p>
</body>
</html>
"""


def page() -> str:
    user = acting_user()
    title = current_app.config.get("API_TITLE", "Gateway") + " API documentation"
    rows = "\n".join(
        f'<tr><td>{escape(name)}</td><td><a href="{escape(spec)}">{escape(spec)}</a></td>'
        f"<td><code>{escape(prefix or '/')}</code></td><td>{escape(what)}</td></tr>"
        for name, spec, prefix, what in SPECS
    )
    return _PAGE.format(title=escape(title), user=escape(user.id or ""), role=escape(user.role or ""), rows=rows)


@docs.route("/api/docs")
class DocumentationPage(MethodView):
    @docs.doc(responses={200: {"description": "an HTML page", "content": {"text/html": {}}}})
    def get(self):
        """The documentation page: links to the gateway's spec and each service's, through the front."""
        response = Response(page(), mimetype="text/html")
        # Nothing on the page runs or loads anything: say so, so an injected tag could not either.
        response.headers["Content-Security-Policy"] = "default-src 'none'"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
