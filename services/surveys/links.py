"""Use cases of web-link surveys: signed, expiring, single-use links, issued to a customer and
answered once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import update

from shared.errors import Conflict, DomainError, NotFound
from shared.models import new_id, utcnow
from shared.replicas import resolve_customer_id
from shared.unit_of_work import UnitOfWork

from . import domain
from .domain import PROVENANCE_FIELDS, LowScoreRule, Provenance
from .models import CustomerReplica, SurveyLink, SurveyTemplate
from .responses import checked_answers, count_and_announce, insert_response, language_for, new_response, settle
from .survey_templates import answerable_template, get_template

LINK_SALT = "surveys.link"
MAX_LINK_SECONDS = 90 * 24 * 3600


class LinkExpired(DomainError):
    """The link's time is up (answered 410 Gone: the link was ours, and is no more)."""


USED = "This survey link was already used; each link answers once."
NOT_OURS = "This is not a survey link of ours."


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
    template = answerable_template(uow, template_id, template_version)
    now = utcnow()
    language = language_for(uow.session.connection(), template, customer_id, language)
    link = SurveyLink(
        link_id=new_id(),
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
    """The link and its template if the token is ours, unexpired and unused; else NotFound (not ours),
    Conflict (used) or LinkExpired."""
    try:
        payload = link_serializer(secret).loads(token, max_age=MAX_LINK_SECONDS)
    except SignatureExpired:
        raise LinkExpired("This survey link has expired.") from None
    except BadSignature:
        raise NotFound(NOT_OURS) from None
    link = uow.session.get(SurveyLink, payload.get("link") if isinstance(payload, dict) else None)
    if link is None:
        raise NotFound(NOT_OURS)
    if link.used_at is not None:
        raise Conflict(USED)
    if domain.as_utc(link.expires_at) <= (now or utcnow()):
        raise LinkExpired("This survey link has expired.")
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
) -> dict:
    """Answer through a link, once: the link is spent in the same transaction that stores the response."""
    link, template_row = open_link(uow, secret, token)
    now = utcnow()
    spent = uow.session.execute(
        update(SurveyLink).where(SurveyLink.link_id == link.link_id, SurveyLink.used_at.is_(None)).values(used_at=now)
    )
    if spent.rowcount != 1:  # another submission spent it meanwhile
        raise Conflict(USED)
    checked = checked_answers(template_row.domain, answers, partial=partial)
    response = new_response(
        uow, template_row, link.customer_id, "link", link.language, Provenance.of(link.__dict__), now
    )
    response["answers"] = checked
    response["comment"] = comment if template_row.comment_enabled else None
    link.response_id = response["response_id"]
    settle(response, now, partial=partial)
    insert_response(uow, response)
    count_and_announce(uow, rule, template_row.domain, response)
    uow.commit()
    return response
