"""HTTP routes for customer data protection in the tickets service (the directory owns requests).

``GET /privacy/customers/{id}/export`` and ``GET /privacy/erasures?ids=`` are every service's
(``shared.privacy``); the directory adds ``POST /privacy/customers/{id}/erase`` and the requests.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import Schema, fields, validate

from shared.auth import acting_user
from shared.privacy import hash_secret, privacy_blueprint
from shared.web import unit_of_work

from . import privacy
from .models import PrivacyErasure

blueprint = privacy_blueprint("tickets", PrivacyErasure, privacy.export_customer, unit_of_work)


class PrivacyRequestOut(Schema):
    request_id = fields.String()
    customer_id = fields.String()
    kind = fields.String(validate=validate.OneOf(("erasure",)))
    requested_by = fields.String(allow_none=True)
    requested_at = fields.DateTime()
    due_at = fields.DateTime(metadata={"description": "every service should have applied it by then"})


class RequestListArgs(Schema):
    days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=3660))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


def _deadline() -> timedelta:
    settings = current_app.extensions["settings"]
    return timedelta(minutes=float(settings.option("PRIVACY_ERASURE_DEADLINE_MINUTES", "60")))


@blueprint.route("/customers/<customer_id>/erase")
class Erase(MethodView):
    @blueprint.response(201, PrivacyRequestOut)
    @blueprint.alt_response(200, schema=PrivacyRequestOut, description="Erased already: the earlier request")
    def post(self, customer_id):
        """Erase a customer's personal data everywhere: recorded here, applied here, and announced as
        ``customer.erased`` for every other service. Report counts stay as they are."""
        with unit_of_work() as uow:
            try:
                request, new = privacy.request_erasure(uow, customer_id, acting_user().id, hash_secret(), _deadline())
            except privacy.NotFound:
                abort(404, message=f"No customer {customer_id}.")
            return request, 201 if new else 200


@blueprint.route("/requests")
class Requests(MethodView):
    @blueprint.arguments(RequestListArgs, location="query")
    @blueprint.response(200, PrivacyRequestOut(many=True))
    def get(self, args):
        """Erasure requests of the last ``days`` days, newest first."""
        from shared.privacy import utcnow

        with unit_of_work(read_only=True) as uow:
            return privacy.list_requests(uow, utcnow() - timedelta(days=args["days"]), args["limit"])


@blueprint.route("/requests/<request_id>")
class RequestById(MethodView):
    @blueprint.response(200, PrivacyRequestOut)
    def get(self, request_id):
        """One erasure request."""
        with unit_of_work(read_only=True) as uow:
            try:
                return privacy.get_request(uow, request_id)
            except privacy.NotFound:
                abort(404, message=f"No privacy request {request_id}.")
