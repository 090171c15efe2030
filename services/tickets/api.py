"""HTTP routes of the tickets service, and the schemas that are also its OpenAPI spec."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate

from shared.event_catalog import E164
from shared.web import unit_of_work

from . import service

customers = Blueprint("customers", __name__, url_prefix="/customers", description="The customer directory")


class CustomerIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    phone = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(E164, error="Not a phone number in E.164 form (+ and 7 to 15 digits)."),
    )
    email = fields.Email(load_default=None, allow_none=True)


class CustomerOut(Schema):
    id = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    created_at = fields.DateTime()


@customers.route("")
class Customers(MethodView):
    @customers.arguments(CustomerIn)
    @customers.response(201, CustomerOut)
    def post(self, body):
        """Add a customer; announces ``customer.created``."""
        with unit_of_work() as uow:
            return service.create_customer(uow, **body)


@customers.route("/<customer_id>")
class CustomerById(MethodView):
    @customers.response(200, CustomerOut)
    def get(self, customer_id):
        """One customer."""
        with unit_of_work(read_only=True) as uow:
            customer = service.get_customer(uow, customer_id)
            if customer is None:
                abort(404, message=f"No customer {customer_id}.")
            return customer
