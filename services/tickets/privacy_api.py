"""HTTP routes for customer data protection in the tickets service (the directory owns requests).

``GET /privacy/customers/{id}/export`` and ``GET /privacy/erasures?ids=`` are every service's
(``shared.privacy``); the directory adds ``POST /privacy/customers/{id}/erase`` and the requests.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from shared.auth import acting_user
from shared.privacy import hash_secret, privacy_blueprint, utcnow
from shared.schemas import Timestamp, page, page_args, page_schema
from shared.web import unit_of_work

from . import privacy
from .models import PrivacyErasure

blueprint = privacy_blueprint("tickets", PrivacyErasure, privacy.export_customer, unit_of_work)


class PrivacyRequestOut(Schema):
    request_id = fields.String()
    customer_id = fields.String()
    kind = fields.String(validate=validate.OneOf(("erasure",)))
    requested_by = fields.String(allow_none=True)
    requested_at = Timestamp()
    due_at = Timestamp(metadata={"description": "every service should have applied it by then"})


class RequestListArgs(page_args(default=100, maximum=1000)):
    days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=3660))


PrivacyRequestPage = page_schema(PrivacyRequestOut, "PrivacyRequestPage")


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
            request, new = privacy.request_erasure(uow, customer_id, acting_user().id, hash_secret(), _deadline())
            return request, 201 if new else 200


@blueprint.route("/requests")
class Requests(MethodView):
    @blueprint.arguments(RequestListArgs, location="query")
    @blueprint.response(200, PrivacyRequestPage)
    def get(self, args):
        """Erasure requests of the last ``days`` days, newest first."""
        with unit_of_work(read_only=True) as uow:
            since = utcnow() - timedelta(days=args["days"])
            items, total = privacy.list_requests(uow, since, args["limit"], args["offset"])
            return page(items, total, args)


@blueprint.route("/requests/<request_id>")
class RequestById(MethodView):
    @blueprint.response(200, PrivacyRequestOut)
    def get(self, request_id):
        """One erasure request."""
        with unit_of_work(read_only=True) as uow:
            return privacy.get_request(uow, request_id)
