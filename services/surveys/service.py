"""The surveys service's use cases: each runs in one unit of work and commits once.

A complete response adds its answers to the rollups (``survey_rollups``) and its count to
``survey_counts`` in the same transaction that stores it, and announces ``survey.completed``
(and ``survey.low_score`` when the rule matches) in that transaction too. Metrics read only
the rollups and counts, never the responses.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from shared.config import Settings
from shared.errors import Conflict, Invalid
from shared.events import isoformat_utc
from shared.replicas import resolve_customer_id
from shared.unit_of_work import UnitOfWork

from . import domain
from .domain import LowScoreRule, Sums, Template
from .models import (
    CustomerReplica,
    SurveyContact,
    SurveyCount,
    SurveyLink,
    SurveyPurchase,
    SurveyResponse,
    SurveyResurvey,
    SurveyRollup,
    SurveyTemplate,
)

COMPLETE, PARTIAL, IN_PROGRESS = "complete", "partial", "in_progress"
PROVENANCE_FIELDS = ("agent_id", "call_id", "entry_id", "campaign_id", "purchase_id")


def now_utc() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; every stored time is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text))


def low_score_rule(settings: Settings) -> LowScoreRule:
    return LowScoreRule(
        recommend_at_most=int(settings.option("LOW_SCORE_RECOMMEND_MAX", "6")),
        any_at_most=int(settings.option("LOW_SCORE_ANY_MAX", "4")),
    )


# --- templates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateVersion:
    """One stored template version; versions never change once written, so each process keeps them."""

    template_id: str
    version: int
    name: str
    questions: list
    comment_enabled: bool
    created_at: datetime

    @functools.cached_property
    def domain(self) -> Template:
        return Template.of(self.template_id, self.version, self.questions)


_TEMPLATE_VERSIONS: dict[tuple[str, str, int], TemplateVersion] = {}  # (database, id, version)
# Which version is the latest, as read at a moment (time.monotonic()), per (database, id). A response
# that names no version takes the latest as read at most LATEST_VERSION_MAX_AGE seconds ago, so the
# submission path asks the database only once a second; this process sees its own new versions at once.
_LATEST_VERSIONS: dict[tuple[str, str], tuple[int, float]] = {}
LATEST_VERSION_MAX_AGE = 1.0

_LATEST_VERSION = select(func.max(SurveyTemplate.version)).where(SurveyTemplate.template_id == bindparam("template_id"))


def get_template(
    uow: UnitOfWork, template_id: str, version: int | None = None, *, max_age: float = 0.0
) -> TemplateVersion | None:
    """A template version; the latest when ``version`` is None (as known ``max_age`` seconds ago at most)."""
    if version is None:
        version = _latest_version(uow, template_id, max_age)
        if version is None:
            return None
    cached = _TEMPLATE_VERSIONS.get((uow.database.url, template_id, version))
    if cached is None:
        row = uow.session.get(SurveyTemplate, (template_id, version))
        if row is None:
            return None
        cached = TemplateVersion(
            row.template_id, row.version, row.name, row.questions, row.comment_enabled, row.created_at
        )
        _TEMPLATE_VERSIONS[(uow.database.url, template_id, version)] = cached
    return cached


def _latest_version(uow: UnitOfWork, template_id: str, max_age: float) -> int | None:
    known = _LATEST_VERSIONS.get((uow.database.url, template_id))
    if known is not None and time.monotonic() - known[1] <= max_age:
        return known[0]
    read_at = time.monotonic()
    version = uow.session.execute(_LATEST_VERSION, {"template_id": template_id}).scalar_one_or_none()
    if version is not None:
        _LATEST_VERSIONS[(uow.database.url, template_id)] = (version, read_at)
    return version


def latest_templates(uow: UnitOfWork) -> list[SurveyTemplate]:
    latest = (
        select(SurveyTemplate.template_id, func.max(SurveyTemplate.version).label("version"))
        .group_by(SurveyTemplate.template_id)
        .subquery()
    )
    query = select(SurveyTemplate).join(
        latest, (SurveyTemplate.template_id == latest.c.template_id) & (SurveyTemplate.version == latest.c.version)
    )
    return list(uow.session.execute(query.order_by(SurveyTemplate.created_at, SurveyTemplate.template_id)).scalars())


def create_template_version(
    uow: UnitOfWork, *, template_id: str | None, name: str, questions: list[dict], comment_enabled: bool
) -> SurveyTemplate:
    """A new template (version 1), or the next version of an existing one; old versions stay answerable."""
    keys = [question["key"] for question in questions]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise Invalid({"questions": f"Question keys must be unique; repeated: {', '.join(duplicates)}."})
    if template_id is None:
        template_id, version = str(uuid.uuid4()), 1
    else:
        current = get_template(uow, template_id)
        if current is None:
            raise Invalid({"template_id": f"No template {template_id}; leave it out to create a new template."})
        version = current.version + 1
    template = SurveyTemplate(
        template_id=template_id,
        version=version,
        name=name,
        questions=questions,
        comment_enabled=comment_enabled,
        created_at=now_utc(),
    )
    uow.session.add(template)
    try:
        uow.session.flush()
    except IntegrityError:
        raise Conflict(f"Version {version} of template {template_id} was created meanwhile; try again.") from None
    uow.commit()
    _LATEST_VERSIONS[(uow.database.url, template_id)] = (version, time.monotonic())
    return template


def domain_template(row: TemplateVersion | SurveyTemplate) -> Template:
    return row.domain if isinstance(row, TemplateVersion) else Template.of(row.template_id, row.version, row.questions)


# --- responses ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    agent_id: str | None = None
    call_id: str | None = None
    entry_id: str | None = None
    campaign_id: str | None = None
    purchase_id: str | None = None

    @classmethod
    def of(cls, values: Mapping) -> Provenance:
        return cls(**{name: _text(values.get(name)) for name in PROVENANCE_FIELDS})


def _text(value) -> str | None:
    return None if value is None else str(value)


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

    Raises ``domain.InvalidAnswers`` naming each bad answer, ``Invalid`` for an unknown
    template, and ``Conflict`` when the call or call-list entry already has a response.
    """
    now = now or now_utc()
    # Checked before the write transaction opens (at the first statement of _new_response):
    # two gunicorn workers share SQLite's one write lock, so it is held only for the lookups
    # and writes that must happen inside it.
    template = _answerable_template(uow, template_id, template_version, max_age=LATEST_VERSION_MAX_AGE)
    checked = domain.check_answers(template.domain, answers, partial=partial)
    response = _new_response(uow, template, customer_id, channel, language, provenance, now)
    response["answers"] = checked
    response["comment"] = comment if template.comment_enabled else None
    _settle(response, now, partial=partial)
    _insert(uow, response)  # first: a refused duplicate has counted nothing
    low = _count_and_announce(uow, rule, template.domain, response)
    uow.commit()
    # Not a column: the agent's screen says at once that a service-recovery case will be opened.
    return {**response, "low_questions": low}


def _answerable_template(
    uow: UnitOfWork, template_id: str, version: int | None, *, max_age: float = 0.0
) -> TemplateVersion:
    row = get_template(uow, template_id, version, max_age=max_age)
    if row is None:
        if version is not None and get_template(uow, template_id) is not None:
            raise Invalid({"template_version": f"Template {template_id} has no version {version}."})
        raise Invalid({"template_id": f"No template {template_id}."})
    return row


# Lookups of the write path, built once: SQLAlchemy Core on the session's connection, without
# the ORM's per-statement work (what they read is a column or two, never an object to change).
_MERGED_INTO = select(CustomerReplica.merged_into_id).where(CustomerReplica.customer_id == bindparam("customer_id"))
_LANGUAGE_OF_CUSTOMER = select(CustomerReplica.language).where(CustomerReplica.customer_id == bindparam("customer_id"))


def language_for(connection, template: TemplateVersion, customer_id: str, requested: str | None) -> str:
    """The language a survey of ``template`` is asked in (``domain.choose_language``)."""
    offered = list(template.domain.questions[0].texts) if template.domain.questions else ["en"]
    customer = connection.execute(_LANGUAGE_OF_CUSTOMER, {"customer_id": customer_id}).scalar()
    return domain.choose_language(offered, requested, customer)


_PRODUCT_OF_PURCHASE = select(SurveyPurchase.product).where(SurveyPurchase.purchase_id == bindparam("purchase_id"))
_LAST_CONTACT_OF_ENTRY = (
    select(SurveyContact.agent_id, SurveyContact.campaign_id, SurveyContact.purchase_id)
    .where(SurveyContact.entry_id == bindparam("entry_id"))
    .order_by(SurveyContact.attempt.desc())
    .limit(1)
)


def _new_response(
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
        "response_id": str(uuid.uuid4()),
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
_RESPONSE_COLUMNS = tuple(column.key for column in SurveyResponse.__table__.columns)


def _insert(uow: UnitOfWork, response: Mapping) -> None:
    """Store a new response in one statement; the unique call and entry ids refuse a second one."""
    try:
        uow.session.connection().execute(_INSERT_RESPONSE, {name: response[name] for name in _RESPONSE_COLUMNS})
    except IntegrityError:
        raise Conflict("This call or call-list entry already has a survey response; a second one is refused.") from None


def _settle(response: dict, now: datetime, *, partial: bool) -> None:
    """Mark a response complete (now) or partial (counted on the day it started)."""
    if partial:
        response["status"] = PARTIAL
        response["day"] = domain.day_of(as_utc(response["started_at"]))
    else:
        response["status"] = COMPLETE
        response["completed_at"] = now
        response["day"] = domain.day_of(now)


def _count_and_announce(uow: UnitOfWork, rule: LowScoreRule, template: Template, response: Mapping) -> list[str]:
    """Count a settled response; a complete one also adds its answers to the rollups and is announced.
    Returns the questions the low-score rule found low (announced with ``survey.low_score``)."""
    dimensions = _dimensions_of(response)
    if response["status"] == PARTIAL:
        add_counts(uow.session, response["template_id"], response["day"], dimensions, "partial")
        return []
    rows = domain.rollup_rows(response["template_id"], response["day"], dimensions, response["answers"])
    _increment(uow.session, SurveyRollup.__table__, _ROLLUP_KEY, _SUM_COLUMNS, rows)
    add_counts(uow.session, response["template_id"], response["day"], dimensions, "completed")
    data = completed_event(response)
    uow.publish("survey.completed", data)
    low = rule.low_questions(template, response["answers"])
    if low:
        uow.publish("survey.low_score", {**data, "low_questions": low})
    return low


def _dimensions_of(response: Mapping) -> dict[str, str | None]:
    return {
        "product": response["product"],
        "agent": response["agent_id"],
        "campaign": response["campaign_id"],
        "channel": response["channel"],
    }


def _columns_of(response: SurveyResponse) -> dict:
    return {name: getattr(response, name) for name in _RESPONSE_COLUMNS}


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


def responses_of_customer(uow: UnitOfWork, customer_id: str, limit: int = 200) -> list[SurveyResponse]:
    customer_id = resolve_customer_id(uow.session, CustomerReplica, customer_id)
    query = (
        select(SurveyResponse)
        .where(SurveyResponse.customer_id == customer_id, SurveyResponse.status != IN_PROGRESS)
        .order_by(SurveyResponse.started_at.desc(), SurveyResponse.response_id)
        .limit(limit)
    )
    return list(uow.session.execute(query).scalars())


def customer_history(uow: UnitOfWork, customer_id: str) -> dict:
    """A customer's responses, newest first, and per question its scores over time (oldest first)."""
    survivor = resolve_customer_id(uow.session, CustomerReplica, customer_id)
    responses = responses_of_customer(uow, survivor)
    return {"customer_id": survivor, "responses": responses, "trend": score_trend(responses)}


def score_trend(responses: list[SurveyResponse]) -> dict:
    """Per question, the completed responses' scores oldest first, with first, latest, change, mean."""
    trend: dict[str, list[dict]] = {}
    for response in sorted(
        (r for r in responses if r.status == COMPLETE), key=lambda r: (as_utc(r.completed_at), r.response_id)
    ):
        for key, score in response.answers.items():
            trend.setdefault(key, []).append(
                {"completed_at": as_utc(response.completed_at), "score": score, "response_id": response.response_id}
            )
    summary = {
        key: {
            "points": points,
            "first": points[0]["score"],
            "latest": points[-1]["score"],
            "change": points[-1]["score"] - points[0]["score"],
            "mean": sum(point["score"] for point in points) / len(points),
        }
        for key, points in trend.items()
    }
    return summary


SUMMARY_LIMIT = 20
_responses = SurveyResponse.__table__.c
_SUMMARY_COLUMNS = (
    "response_id",
    "template_id",
    "template_version",
    "customer_id",
    "channel",
    "status",
    "agent_id",
    "call_id",
    "entry_id",
    "campaign_id",
    "purchase_id",
    "product",
    "answers",
    "comment",
    "language",
    "started_at",
    "completed_at",
)
# responses_of_customer's query, as columns (ResponseOut's fields): no ORM objects, no schema dump
_LATEST_RESPONSES = (
    select(*(_responses[name] for name in _SUMMARY_COLUMNS))
    .where(_responses.customer_id == bindparam("customer_id"), _responses.status != IN_PROGRESS)
    .order_by(_responses.started_at.desc(), _responses.response_id)
    .limit(bindparam("limit"))
)
_RESPONSE_TOTALS = select(
    func.count(), func.coalesce(func.sum(case((_responses.status == COMPLETE, 1), else_=0)), 0)
).where(_responses.customer_id == bindparam("customer_id"), _responses.status != IN_PROGRESS)


def customer_survey_summary(uow: UnitOfWork, customer_id: str, limit: int = SUMMARY_LIMIT) -> dict:
    """The customer view's part, as JSON values: the latest ``limit`` responses (newest first),
    the totals, and per question the trend over those latest responses (``score_trend``, as
    ``customer_history`` has it for all of them).

    Reads the (customer_id, started_at) index; a merged-away id reaches the survivor's.
    """
    survivor = resolve_customer_id(uow.session, CustomerReplica, customer_id)
    params = {"customer_id": survivor, "limit": limit}
    connection = uow.session.connection()
    rows = connection.execute(_LATEST_RESPONSES, params).all()
    if len(rows) < limit:
        total, completed = len(rows), sum(1 for row in rows if row.status == COMPLETE)
    else:
        total, completed = connection.execute(_RESPONSE_TOTALS, params).one()
    trend = score_trend(rows)
    for question in trend.values():
        for point in question["points"]:
            point["completed_at"] = point["completed_at"].isoformat()
    responses = []
    for row in rows:
        response = row._asdict()
        response["started_at"] = as_utc(row.started_at).isoformat()
        response["completed_at"] = as_utc(row.completed_at).isoformat() if row.completed_at else None
        responses.append(response)
    return {"customer_id": survivor, "total": total, "completed": completed, "responses": responses, "trend": trend}


# --- keypad (phone) surveys ---------------------------------------------------------------


def start_keypad_survey(
    uow: UnitOfWork,
    *,
    call_id: str,
    customer_id: str,
    template_id: str,
    template_version: int | None,
    language: str,
    provenance: Provenance,
) -> SurveyResponse:
    """The keypad response of this call: started now, or the one already under way (a retried webhook)."""
    existing = uow.session.execute(select(SurveyResponse).where(SurveyResponse.call_id == call_id)).scalar_one_or_none()
    if existing is not None:
        return existing
    template = _answerable_template(uow, template_id, template_version)
    response = _new_response(
        uow,
        template,
        customer_id,
        "keypad",
        language,
        Provenance(**{**provenance.__dict__, "call_id": call_id}),
        now_utc(),
    )
    _insert(uow, response)
    uow.commit()
    return SurveyResponse(**response)


def keypad_response(uow: UnitOfWork, response_id: str) -> tuple[SurveyResponse, Template] | None:
    response = uow.session.get(SurveyResponse, response_id)
    if response is None:
        return None
    template = get_template(uow, response.template_id, response.template_version)
    return response, domain_template(template)


def record_keypad_answer(uow: UnitOfWork, response_id: str, key: str, score: int | None) -> SurveyResponse:
    """Keep one typed answer (None: the question was skipped) of a keypad survey still under way."""
    response = uow.session.get(SurveyResponse, response_id, with_for_update=True)
    if response.status == IN_PROGRESS and score is not None:
        response.answers = {**response.answers, key: score}
    uow.commit()
    return response


def finish_keypad_survey(uow: UnitOfWork, rule: LowScoreRule, response_id: str) -> SurveyResponse:
    """The caller reached the end: complete if every required question was answered, else partial."""
    response = uow.session.get(SurveyResponse, response_id, with_for_update=True)
    if response.status != IN_PROGRESS:
        return response
    template = domain_template(get_template(uow, response.template_id, response.template_version))
    try:
        domain.check_answers(template, response.answers, partial=False)
    except domain.InvalidAnswers:
        _settle_stored(uow, rule, template, response, partial=True)
    else:
        _settle_stored(uow, rule, template, response, partial=False)
    uow.commit()
    return response


def _settle_stored(
    uow: UnitOfWork, rule: LowScoreRule | None, template: Template | None, response: SurveyResponse, *, partial: bool
) -> None:
    """Settle a keypad response stored while in progress, then count it (and announce it when complete)."""
    columns = _columns_of(response)
    _settle(columns, now_utc(), partial=partial)
    response.status, response.completed_at, response.day = columns["status"], columns["completed_at"], columns["day"]
    _count_and_announce(uow, rule, template, columns)


def keypad_call_ended(uow: UnitOfWork, call_id: str) -> SurveyResponse | None:
    """The call ended (Twilio's status callback): a survey still under way is kept as partial."""
    response = uow.session.execute(
        select(SurveyResponse).where(SurveyResponse.call_id == call_id).with_for_update()
    ).scalar_one_or_none()
    if response is not None and response.status == IN_PROGRESS:
        _settle_stored(uow, None, None, response, partial=True)
        uow.commit()
    return response


# --- web links ----------------------------------------------------------------------------

LINK_SALT = "surveys.link"
MAX_LINK_SECONDS = 90 * 24 * 3600


class LinkRefused(Exception):
    """A link that cannot be answered: ``status`` 404 (not ours), 410 (expired) or 409 (used)."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def link_serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=LINK_SALT)


def issue_link(
    uow: UnitOfWork,
    secret: str,
    *,
    customer_id: str,
    template_id: str,
    template_version: int | None,
    language: str | None,
    provenance: Provenance,
    expires_in: timedelta,
) -> tuple[SurveyLink, str]:
    """A single-use link: the token signs only the link's id; what it may answer lives in the row."""
    link, token = new_link(
        uow,
        secret,
        customer_id=customer_id,
        template_id=template_id,
        template_version=template_version,
        language=language,
        provenance=provenance,
        expires_in=expires_in,
    )
    uow.commit()
    return link, token


def new_link(
    uow: UnitOfWork,
    secret: str,
    *,
    customer_id: str,
    template_id: str,
    template_version: int | None,
    language: str,
    provenance: Provenance,
    expires_in: timedelta,
) -> tuple[SurveyLink, str]:
    """issue_link without the commit (a survey invitation by mail issues its link in its own transaction)."""
    template = _answerable_template(uow, template_id, template_version)
    now = now_utc()
    language = language_for(uow.session.connection(), template, customer_id, language)
    link = SurveyLink(
        link_id=str(uuid.uuid4()),
        customer_id=resolve_customer_id(uow.session, CustomerReplica, customer_id),
        template_id=template.template_id,
        template_version=template.version,
        language=language,
        expires_at=now + expires_in,
        created_at=now,
        **{name: getattr(provenance, name) for name in PROVENANCE_FIELDS},
    )
    uow.session.add(link)
    uow.session.flush()
    return link, link_serializer(secret).dumps({"link": link.link_id})


def open_link(
    uow: UnitOfWork, secret: str, token: str, now: datetime | None = None
) -> tuple[SurveyLink, SurveyTemplate]:
    """The link and its template if the token is ours, unexpired and unused; else LinkRefused."""
    try:
        payload = link_serializer(secret).loads(token, max_age=MAX_LINK_SECONDS)
    except SignatureExpired:
        raise LinkRefused(410, "This survey link has expired.") from None
    except BadSignature:
        raise LinkRefused(404, "This is not a survey link of ours.") from None
    link = uow.session.get(SurveyLink, payload.get("link") if isinstance(payload, dict) else None)
    if link is None:
        raise LinkRefused(404, "This is not a survey link of ours.")
    if link.used_at is not None:
        raise LinkRefused(409, "This survey link was already used; each link answers once.")
    if as_utc(link.expires_at) <= (now or now_utc()):
        raise LinkRefused(410, "This survey link has expired.")
    return link, get_template(uow, link.template_id, link.template_version)


def submit_by_link(
    uow: UnitOfWork,
    rule: LowScoreRule,
    secret: str,
    token: str,
    *,
    answers: Mapping[str, object],
    comment: str | None,
    partial: bool,
) -> SurveyResponse:
    """Answer through a link, once: the link is spent in the same transaction that stores the response."""
    link, template_row = open_link(uow, secret, token)
    now = now_utc()
    spent = uow.session.execute(
        update(SurveyLink).where(SurveyLink.link_id == link.link_id, SurveyLink.used_at.is_(None)).values(used_at=now)
    )
    if spent.rowcount != 1:  # another submission spent it meanwhile
        raise LinkRefused(409, "This survey link was already used; each link answers once.")
    checked = domain.check_answers(template_row.domain, answers, partial=partial)
    response = _new_response(
        uow, template_row, link.customer_id, "link", link.language, Provenance.of(link.__dict__), now
    )
    response["answers"] = checked
    response["comment"] = comment if template_row.comment_enabled else None
    link.response_id = response["response_id"]
    _settle(response, now, partial=partial)
    _insert(uow, response)
    _count_and_announce(uow, rule, template_row.domain, response)
    uow.commit()
    return response


# --- rollups ------------------------------------------------------------------------------

_SUM_COLUMNS = ("n", "total", "squares", *(f"c{score}" for score in domain.SCALE))
_ROLLUP_KEY = ("span", "dimension", "day", "value", "template_id", "question")
_COUNT_KEY = ("dimension", "day", "value", "template_id", "measure")


@functools.cache
def _increment_sql(dialect, table_name: str, key: tuple[str, ...], sums: tuple[str, ...], also: tuple[str, ...]):
    """INSERT INTO t (key, also, sums) VALUES (...) ON CONFLICT (key) DO UPDATE SET s = t.s + excluded.s, ...

    Driver SQL, sent with executemany of plain tuples: a complete response adds to 50 rollup rows,
    and SQLAlchemy's per-row parameter processing of the same Core statement (a dict per row)
    cost several times the database's own work while the write lock is held.
    """
    quote = dialect.identifier_preparer.quote
    table = quote(table_name)
    columns = [quote(name) for name in (*key, *also, *sums)]
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    increments = ", ".join(f"{quote(name)} = {table}.{quote(name)} + excluded.{quote(name)}" for name in sums)
    # Only the table's own column names go into the text; every value is a bound parameter.
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"  # noqa: S608
        f" ON CONFLICT ({', '.join(quote(name) for name in key)}) DO UPDATE SET {increments}"
    )


def _increment(session, table, key, sums, rows: list[tuple], also: tuple[str, ...] = ()) -> None:
    """Add each row's sums (its last columns) to the row with its key, or insert it: one executemany."""
    if rows:
        connection = session.connection()
        connection.exec_driver_sql(_increment_sql(connection.dialect, table.name, key, sums, also), rows)


def add_rollups(session, deltas: Mapping[domain.RollupKey, Sums], sign: int = 1) -> None:
    """Add (or with sign=-1 take away) answers to the rollup rows, in one statement."""
    rows = [
        (*key, sign * sums.n, sign * sums.total, sign * sums.squares, *(sign * count for count in sums.counts))
        for key, sums in deltas.items()
    ]
    _increment(session, SurveyRollup.__table__, _ROLLUP_KEY, _SUM_COLUMNS, rows)


def add_counts(session, template_id: str, day: str, dimensions: Mapping, measure: str, sign: int = 1) -> None:
    week = domain.week_of(day)
    rows = [
        (dimension, day, value, template_id, measure, week, sign)
        for dimension, value in domain.dimension_values(dimensions)
    ]
    _increment(session, SurveyCount.__table__, _COUNT_KEY, ("count",), rows, also=("week",))


# --- what other services tell us ----------------------------------------------------------


def record_purchase(uow: UnitOfWork, data: Mapping) -> None:
    """Remember a purchase's product; responses that named it before it arrived move to its product."""
    if uow.session.get(SurveyPurchase, data["purchase_id"]) is None:
        uow.session.add(
            SurveyPurchase(
                purchase_id=data["purchase_id"],
                customer_id=data["customer_id"],
                sku=data["sku"],
                product=data["product"],
                purchased_at=parse_time(data["purchased_at"]),
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
        for value, sign in (("", -1), (product, 1)):
            if response.status == COMPLETE:
                deltas = domain.rollup_deltas(response.template_id, response.day, {"product": value}, response.answers)
                add_rollups(uow.session, {key: s for key, s in deltas.items() if key[1] == "product"}, sign)
            row = ("product", response.day, value, response.template_id, measure, domain.week_of(response.day), sign)
            _increment(uow.session, SurveyCount.__table__, _COUNT_KEY, ("count",), [row], also=("week",))
    response.product = product


def record_contact(uow: UnitOfWork, data: Mapping) -> None:
    """A follow-up call attempt's outcome: counted once per (entry, attempt) for the response rate."""
    if uow.session.get(SurveyContact, (data["entry_id"], data["attempt"])) is not None:
        return
    ended_at = parse_time(data["ended_at"])
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
        raise LookupError(f"ticket {data['ticket_id']} names response {response_id}, unknown here, and no customer")
    customer_id = resolve_customer_id(uow.session, CustomerReplica, customer_id)
    due_at = parse_time(data["resolved_at"]) + delay
    request_id = domain.resurvey_request_id(response_id)
    uow.session.add(
        SurveyResurvey(
            response_id=response_id,
            request_id=request_id,
            ticket_id=data["ticket_id"],
            due_at=due_at,
            created_at=now_utc(),
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


def resurvey_delay(settings: Settings | None = None) -> timedelta:
    """``RESURVEY_DELAY_DAYS`` (7): how long after the fix the customer is asked again."""
    days = settings.option("RESURVEY_DELAY_DAYS", "7") if settings else os.environ.get("RESURVEY_DELAY_DAYS", "7")
    return timedelta(days=float(days))


# --- metrics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsQuery:
    start: date
    end: date  # inclusive
    group_by: tuple[str, ...]  # at most one time dimension and one attribute dimension
    template_id: str | None
    min_n: int

    @property
    def time_dimension(self) -> str | None:
        return next((name for name in self.group_by if name in domain.TIME_DIMENSIONS), None)

    @property
    def attribute_dimension(self) -> str | None:
        return next((name for name in self.group_by if name in domain.ATTRIBUTE_DIMENSIONS), None)

    def previous(self) -> MetricsQuery:
        length = (self.end - self.start).days + 1
        return MetricsQuery(
            self.start - timedelta(days=length),
            self.start - timedelta(days=1),
            self.group_by,
            self.template_id,
            self.min_n,
        )


def _group_key(query: MetricsQuery, table):
    columns = []
    if query.time_dimension:
        columns.append(table.c[query.time_dimension].label("period"))
    if query.attribute_dimension:
        columns.append(table.c.value.label("group_value"))
    return columns


def rollup_spans(start: date, end: date, by_day: bool) -> list[tuple[str, date, date]]:
    """(span, first start, last start) covering the days start..end: week rows for the whole weeks
    inside the range, day rows for the days before and after them (all day rows for ``by_day``)."""
    first_monday = start + timedelta(days=(7 - start.weekday()) % 7)
    last_monday = end - timedelta(days=(end.weekday() + 1) % 7) - timedelta(days=6)  # of the last whole week
    if by_day or first_monday > last_monday:
        return [("day", start, end)]
    spans = [("week", first_monday, last_monday)]
    if start < first_monday:
        spans.append(("day", start, first_monday - timedelta(days=1)))
    if last_monday + timedelta(days=6) < end:
        spans.append(("day", last_monday + timedelta(days=7), end))
    return spans


def read_rollups(uow: UnitOfWork, query: MetricsQuery) -> dict[tuple, dict[str, Sums]]:
    """(period, group value) -> question -> sums over the query's days.

    Rows already at the report's grain (day rows by day, week rows by week) are read as stored, one
    per template, and merged here: summing them in the database costs more than reading them, and
    there are only a few templates. Rows that several of a group's days add up to are summed there.
    """
    table = SurveyRollup.__table__
    time_dimension, attribute_dimension = query.time_dimension, query.attribute_dimension
    keys = [table.c.day] if time_dimension else []
    keys += [table.c.value, table.c.question]
    sums = [func.sum(table.c[column]).label(column) for column in _SUM_COLUMNS]
    timed = 1 if time_dimension else 0
    result: dict[tuple, dict[str, Sums]] = {}
    for span, first, last in rollup_spans(query.start, query.end, time_dimension == "day"):
        conditions = [
            table.c.span == span,
            table.c.dimension == (attribute_dimension or domain.ALL),
            table.c.day >= first.isoformat(),
            table.c.day <= last.isoformat(),
        ]
        if query.template_id:
            conditions.append(table.c.template_id == query.template_id)
        if span == time_dimension:
            statement = select(*keys, *(table.c[column] for column in _SUM_COLUMNS)).where(*conditions)
        else:
            statement = select(*keys, *sums).where(*conditions).group_by(*keys)
        weeks: dict[str, str] = {}  # day -> its week, for day rows in a report by week
        for row in uow.session.connection().execute(statement):
            n = row[timed + 2]
            if not n:
                continue  # a bucket emptied when its responses moved to their product
            period = None
            if time_dimension:
                period = row[0]
                if time_dimension != span:  # day rows at the edges of a report by week
                    period = weeks.get(period) or weeks.setdefault(period, domain.week_of(period))
            group = (period, row[timed] if attribute_dimension else None)
            question = row[timed + 1]
            found = Sums(
                n=int(n), total=int(row[timed + 3]), squares=int(row[timed + 4]), counts=list(row[timed + 5 :])
            )
            questions = result.get(group)
            if questions is None:
                result[group] = {question: found}
            elif question in questions:
                questions[question].merge(found)
            else:
                questions[question] = found
    return result


def _row_group(query: MetricsQuery, row) -> tuple:
    return (
        row["period"] if query.time_dimension else None,
        row["group_value"] if query.attribute_dimension else None,
    )


def read_counts(uow: UnitOfWork, query: MetricsQuery) -> dict[tuple, dict[str, int]]:
    """(period, group value) -> measure -> count: completed, partial, and contacts by outcome."""
    table = SurveyCount.__table__
    keys = _group_key(query, table)
    statement = (
        select(*keys, table.c.measure, func.sum(table.c["count"]).label("count"))
        .where(
            table.c.dimension == (query.attribute_dimension or domain.ALL),
            table.c.day >= query.start.isoformat(),
            table.c.day <= query.end.isoformat(),
        )
        .group_by(*keys, table.c.measure)
    )
    if query.template_id:  # contacts (template "") belong to no template and always count
        statement = statement.where(table.c.template_id.in_([query.template_id, ""]))
    result: dict[tuple, dict[str, int]] = {}
    for row in uow.session.execute(statement).mappings():
        if row["count"]:
            result.setdefault(_row_group(query, row), {})[row["measure"]] = int(row["count"])
    return result


def recommend_questions(uow: UnitOfWork) -> set[str]:
    """Question keys flagged "recommend" in any template version (they get a 1-10 NPS)."""
    keys = set()
    for questions in uow.session.execute(select(SurveyTemplate.questions)).scalars():
        keys |= {question["key"] for question in questions if question.get("kind") == "recommend"}
    return keys


def metrics(uow: UnitOfWork, query: MetricsQuery) -> dict:
    """Per group and question: n, mean with t-interval, distribution, CSAT with Wilson, NPS, change."""
    previous_query = None if query.time_dimension else query.previous()
    groups = domain.metrics_report(
        time_dimension=query.time_dimension,
        attribute_dimension=query.attribute_dimension,
        min_n=query.min_n,
        current=read_rollups(uow, query),
        counts=read_counts(uow, query),
        previous=read_rollups(uow, previous_query) if previous_query else {},
        recommend=recommend_questions(uow),
    )
    return {
        "from": query.start.isoformat(),
        "to": query.end.isoformat(),
        "group_by": list(query.group_by),
        "template_id": query.template_id,
        "min_n": query.min_n,
        "confidence": domain.CONFIDENCE,
        "compared_with": (
            {"from": previous_query.start.isoformat(), "to": previous_query.end.isoformat()}
            if previous_query
            else {"previous": query.time_dimension}
        ),
        "groups": groups,
    }


def now_date() -> date:
    return now_utc().date()
