"""Use cases of responses: submitting one (from the agent's console or an API caller), and what
every settled response does in its transaction: count it in the rollups and, when complete,
announce ``survey.completed`` (and ``survey.low_score`` when the low-score rule, ``domain.LowScoreRule``,
matches)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from shared.config import Settings
from shared.errors import Conflict, Invalid
from shared.events import isoformat_utc
from shared.models import new_id, utcnow
from shared.unit_of_work import UnitOfWork

from . import domain
from .domain import COMPLETE, IN_PROGRESS, PARTIAL, PROVENANCE_FIELDS, LowScoreRule, Provenance, Template
from .models import CustomerReplica, SurveyContact, SurveyPurchase, SurveyResponse
from .rollups import add_counts, add_rollup_rows
from .survey_templates import LATEST_VERSION_MAX_AGE, TemplateVersion, answerable_template


def low_score_rule(settings: Settings) -> LowScoreRule:
    """The low-score rule as configured (``LOW_SCORE_RECOMMEND_MAX``, ``LOW_SCORE_ANY_MAX``)."""
    return LowScoreRule(
        recommend_at_most=int(settings.option("LOW_SCORE_RECOMMEND_MAX", "6")),
        any_at_most=int(settings.option("LOW_SCORE_ANY_MAX", "4")),
    )


class InvalidAnswersError(Invalid):
    """``domain.InvalidAnswers`` as the service layer raises it: each bad answer named by its
    pointer (``#/answers/<key>``)."""

    def __init__(self, error: domain.InvalidAnswers):
        super().__init__({f"answers.{key}": detail for key, detail in error.errors.items()})
        self.errors = {"answers": {key: [detail] for key, detail in error.errors.items()}}


def checked_answers(template: Template, answers: Mapping[str, object], *, partial: bool) -> dict[str, int]:
    """``domain.check_answers``, its refusal raised as ``Invalid``."""
    try:
        return domain.check_answers(template, answers, partial=partial)
    except domain.InvalidAnswers as error:
        raise InvalidAnswersError(error) from None


def submit_response(
    uow: UnitOfWork,
    rule: LowScoreRule,
    *,
    template_id: str,
    template_version: int | None,
    customer_id: str,
    channel: str,
    answers: Mapping[str, object],
    comment: str | None,
    language: str,
    partial: bool,
    provenance: Provenance,
    now: datetime | None = None,
) -> dict:
    """Store a response (complete, or partial when the customer stopped midway) and count it; the
    stored row, as a dict.

    Raises ``Invalid`` naming each bad answer (``#/answers/<key>``) or an unknown template, and
    ``Conflict`` when the call or call-list entry already has a response.
    """
    now = now or utcnow()
    # Checked before the write transaction opens (at the first statement of _new_response):
    # two gunicorn workers share SQLite's one write lock, so it is held only for the lookups
    # and writes that must happen inside it.
    template = answerable_template(uow, template_id, template_version, max_age=LATEST_VERSION_MAX_AGE)
    checked = checked_answers(template.domain, answers, partial=partial)
    response = new_response(uow, template, customer_id, channel, language, provenance, now)
    response["answers"] = checked
    response["comment"] = comment if template.comment_enabled else None
    settle(response, now, partial=partial)
    insert_response(uow, response)  # first: a refused duplicate has counted nothing
    low = count_and_announce(uow, rule, template.domain, response)
    uow.commit()
    # Not a column: the agent's screen says at once that a service-recovery case will be opened.
    return {**response, "low_questions": low}


# Lookups of the write path, built once: SQLAlchemy Core on the session's connection, without
# the ORM's per-statement work (what they read is a column or two, never an object to change).
_MERGED_INTO = select(CustomerReplica.merged_into_id).where(CustomerReplica.customer_id == bindparam("customer_id"))
_LANGUAGE_OF_CUSTOMER = select(CustomerReplica.language).where(CustomerReplica.customer_id == bindparam("customer_id"))


def language_for(connection, template: TemplateVersion, customer_id: str, requested: str | None) -> str:
    """The language a survey of ``template`` is asked in (``domain.choose_language``)."""
    customer = connection.execute(_LANGUAGE_OF_CUSTOMER, {"customer_id": customer_id}).scalar()
    return domain.choose_language(template.domain.languages, requested, customer)


_PRODUCT_OF_PURCHASE = select(SurveyPurchase.product).where(SurveyPurchase.purchase_id == bindparam("purchase_id"))
_LAST_CONTACT_OF_ENTRY = (
    select(SurveyContact.agent_id, SurveyContact.campaign_id, SurveyContact.purchase_id)
    .where(SurveyContact.entry_id == bindparam("entry_id"))
    .order_by(SurveyContact.attempt.desc())
    .limit(1)
)


def new_response(
    uow: UnitOfWork,
    template: TemplateVersion,
    customer_id: str,
    channel: str,
    language: str,
    provenance: Provenance,
    now: datetime,
) -> dict:
    """A new response's row, in progress, with its provenance completed from the replicas; asked in
    the language named, else the customer's (their replica), else the template's first."""
    connection = uow.session.connection()
    language = language_for(connection, template, customer_id, language)
    provenance = _completed_provenance(connection, provenance)
    product = None
    if provenance.purchase_id:
        product = connection.execute(_PRODUCT_OF_PURCHASE, {"purchase_id": provenance.purchase_id}).scalar()
    return {
        "response_id": new_id(),
        "template_id": template.template_id,
        "template_version": template.version,
        # Replicas may lag behind the directory: an id not heard of yet is kept as given
        # (merges reaching us later move its responses); a merged-away id is redirected.
        "customer_id": _survivor(connection, customer_id),
        "channel": channel,
        "status": IN_PROGRESS,
        **{name: getattr(provenance, name) for name in PROVENANCE_FIELDS},
        "product": product,
        "answers": {},
        "comment": None,
        "language": language,
        "started_at": now,
        "completed_at": None,
        "day": None,
    }


def _survivor(connection, customer_id: str) -> str:
    """``shared.replicas.resolve_customer_id`` with a statement built once: follow merge redirects."""
    seen = set()
    while customer_id not in seen:
        seen.add(customer_id)
        target = connection.execute(_MERGED_INTO, {"customer_id": customer_id}).scalar()
        if target is None:
            return customer_id
        customer_id = target
    return customer_id


def _completed_provenance(connection, provenance: Provenance) -> Provenance:
    """Fill what the call-list entry knows (agent, campaign, purchase) when the caller left it out."""
    if not provenance.entry_id:
        return provenance
    contact = connection.execute(_LAST_CONTACT_OF_ENTRY, {"entry_id": provenance.entry_id}).first()
    if contact is None:
        return provenance
    return Provenance(
        agent_id=provenance.agent_id or contact.agent_id,
        call_id=provenance.call_id,
        entry_id=provenance.entry_id,
        campaign_id=provenance.campaign_id or contact.campaign_id,
        purchase_id=provenance.purchase_id or contact.purchase_id,
    )


_INSERT_RESPONSE = insert(SurveyResponse.__table__)
RESPONSE_COLUMNS = tuple(column.key for column in SurveyResponse.__table__.columns)


def insert_response(uow: UnitOfWork, response: Mapping) -> None:
    """Store a new response in one statement; the unique call and entry ids refuse a second one."""
    try:
        uow.session.connection().execute(_INSERT_RESPONSE, {name: response[name] for name in RESPONSE_COLUMNS})
    except IntegrityError:
        raise Conflict("This call or call-list entry already has a survey response; a second one is refused.") from None


def settle(response: dict, now: datetime, *, partial: bool) -> None:
    """Mark a response complete (now) or partial (counted on the day it started)."""
    if partial:
        response["status"] = PARTIAL
        response["day"] = domain.day_of(domain.as_utc(response["started_at"]))
    else:
        response["status"] = COMPLETE
        response["completed_at"] = now
        response["day"] = domain.day_of(now)


def count_and_announce(uow: UnitOfWork, rule: LowScoreRule, template: Template, response: Mapping) -> list[str]:
    """Count a settled response; a complete one also adds its answers to the rollups and is announced.
    Returns the questions the low-score rule found low (announced with ``survey.low_score``).

    ``template`` is the version the response answered: each answer counts, and is judged low, as
    the kind its question has there (never a kind the key has in another template or version)."""
    dimensions = dimensions_of(response)
    if response["status"] == PARTIAL:
        add_counts(uow.session, response["template_id"], response["day"], dimensions, "partial")
        return []
    kinds = domain.answer_kinds(template)
    rows = domain.rollup_rows(response["template_id"], response["day"], dimensions, response["answers"], kinds)
    add_rollup_rows(uow.session, rows)
    add_counts(uow.session, response["template_id"], response["day"], dimensions, "completed")
    data = completed_event(response)
    uow.publish("survey.completed", data)
    low = rule.low_questions(template, response["answers"])
    if low:
        uow.publish("survey.low_score", {**data, "low_questions": low})
    return low


def dimensions_of(response: Mapping) -> dict[str, str | None]:
    return {
        "product": response["product"],
        "agent": response["agent_id"],
        "campaign": response["campaign_id"],
        "channel": response["channel"],
    }


def columns_of(response: SurveyResponse) -> dict:
    return {name: getattr(response, name) for name in RESPONSE_COLUMNS}


def completed_event(response: Mapping) -> dict:
    return {
        "response_id": response["response_id"],
        "customer_id": response["customer_id"],
        "template_id": response["template_id"],
        "template_version": response["template_version"],
        "channel": response["channel"],
        **{name: response[name] for name in PROVENANCE_FIELDS},
        "product": response["product"],
        "answers": dict(response["answers"]),
        "comment": response["comment"],
        "completed_at": isoformat_utc(response["completed_at"]),
    }
