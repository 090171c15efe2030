"""Use cases run by the events of other services: purchases (a score's product), follow-up call
outcomes (the response rate), customer merges, and resolved service-recovery tickets (the
re-survey that closes the loop)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import select, update

from shared.config import Settings
from shared.errors import NotFound
from shared.events import isoformat_utc
from shared.models import utcnow
from shared.replicas import resolve_customer_id
from shared.unit_of_work import UnitOfWork

from . import domain
from .domain import COMPLETE, PARTIAL
from .models import CustomerReplica, SurveyContact, SurveyCount, SurveyPurchase, SurveyResponse, SurveyResurvey
from .rollups import COUNT_KEY, add_counts, add_rollups, increment
from .survey_templates import get_template


def domain_template_of(uow: UnitOfWork, template_id: str, version: int) -> domain.Template | None:
    found = get_template(uow, template_id, version)
    return found.domain if found else None


def record_purchase(uow: UnitOfWork, data: Mapping) -> None:
    """Remember a purchase's product; responses that named it before it arrived move to its product."""
    if uow.session.get(SurveyPurchase, data["purchase_id"]) is None:
        uow.session.add(
            SurveyPurchase(
                purchase_id=data["purchase_id"],
                customer_id=data["customer_id"],
                sku=data["sku"],
                product=data["product"],
                purchased_at=domain.parse_time(data["purchased_at"]),
            )
        )
    waiting = uow.session.execute(
        select(SurveyResponse).where(
            SurveyResponse.purchase_id == data["purchase_id"], SurveyResponse.product.is_(None)
        )
    ).scalars()
    for response in waiting:
        _move_to_product(uow, response, data["product"])


def _move_to_product(uow: UnitOfWork, response: SurveyResponse, product: str) -> None:
    if response.status in (COMPLETE, PARTIAL):
        measure = "completed" if response.status == COMPLETE else "partial"
        kinds = {}
        if response.status == COMPLETE:  # counted as the kinds of the version it answered
            kinds = domain.answer_kinds(domain_template_of(uow, response.template_id, response.template_version))
        for value, sign in (("", -1), (product, 1)):
            if response.status == COMPLETE:
                deltas = domain.rollup_deltas(
                    response.template_id, response.day, {"product": value}, response.answers, kinds
                )
                add_rollups(uow.session, {key: s for key, s in deltas.items() if key[1] == "product"}, sign)
            row = ("product", response.day, value, response.template_id, measure, domain.week_of(response.day), sign)
            increment(uow.session, SurveyCount.__table__, COUNT_KEY, ("count",), [row], also=("week",))
    response.product = product


def record_contact(uow: UnitOfWork, data: Mapping) -> None:
    """A follow-up call attempt's outcome: counted once per (entry, attempt) for the response rate."""
    if uow.session.get(SurveyContact, (data["entry_id"], data["attempt"])) is not None:
        return
    ended_at = domain.parse_time(data["ended_at"])
    uow.session.add(
        SurveyContact(
            entry_id=data["entry_id"],
            attempt=data["attempt"],
            customer_id=data["customer_id"],
            campaign_id=data["campaign_id"],
            agent_id=data["agent_id"],
            purchase_id=data.get("purchase_id"),
            outcome=data["outcome"],
            ended_at=ended_at,
        )
    )
    purchase = uow.session.get(SurveyPurchase, data["purchase_id"]) if data.get("purchase_id") else None
    dimensions = {
        "product": purchase.product if purchase else None,
        "agent": data["agent_id"],
        "campaign": data["campaign_id"],
        "channel": None,  # a call attempt has no survey channel yet
    }
    measure = domain.CONTACT_MEASURES.get(data["outcome"], "other")
    add_counts(uow.session, "", domain.day_of(ended_at), dimensions, measure)


def move_responses_to_survivor(uow: UnitOfWork, merged_customer_id: str, into_customer_id: str) -> None:
    uow.session.execute(
        update(SurveyResponse)
        .where(SurveyResponse.customer_id == merged_customer_id)
        .values(customer_id=into_customer_id)
    )


def request_resurvey(uow: UnitOfWork, data: Mapping, delay: timedelta) -> None:
    """Close the loop: a resolved service-recovery ticket asks call routing for one re-survey per response."""
    response_id = data.get("survey_response_id")
    if not response_id or uow.session.get(SurveyResurvey, response_id) is not None:
        return
    response = uow.session.get(SurveyResponse, response_id)
    customer_id = response.customer_id if response else data.get("customer_id")
    if customer_id is None:
        raise NotFound(f"ticket {data['ticket_id']} names response {response_id}, unknown here, and no customer")
    customer_id = resolve_customer_id(uow.session, CustomerReplica, customer_id)
    due_at = domain.parse_time(data["resolved_at"]) + delay
    request_id = domain.resurvey_request_id(response_id)
    uow.session.add(
        SurveyResurvey(
            response_id=response_id,
            request_id=request_id,
            ticket_id=data["ticket_id"],
            due_at=due_at,
            created_at=utcnow(),
        )
    )
    uow.publish(
        "followup.requested",
        {
            "request_id": request_id,
            "purpose": "resurvey",
            "customer_id": customer_id,
            "purchase_id": response.purchase_id if response else None,
            "survey_response_id": response_id,
            "ticket_id": data["ticket_id"],
            "due_at": isoformat_utc(due_at),
        },
    )


def resurvey_delay(settings: Settings) -> timedelta:
    """``RESURVEY_DELAY_DAYS`` (7): how long after the fix the customer is asked again."""
    return timedelta(days=float(settings.option("RESURVEY_DELAY_DAYS", "7")))
