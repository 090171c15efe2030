"""Use cases of survey templates: versions written once and kept answerable, read through a
per-process cache (a version never changes once written)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from cachetools import TTLCache
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError

from shared.errors import Conflict, Invalid, NotFound
from shared.models import new_id, utcnow
from shared.schemas import page_of
from shared.unit_of_work import UnitOfWork

from .domain import Template
from .models import SurveyTemplate


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
# Which version is the latest, per (database, id), as read at most LATEST_VERSION_MAX_AGE seconds ago.
# A response that names no version takes it from here (max_age > 0), so the submission path asks the
# database only once a second; every other reader (max_age 0) reads it afresh and refreshes the entry;
# this process sees its own new versions at once.
LATEST_VERSION_MAX_AGE = 1.0
_LATEST_VERSIONS: TTLCache = TTLCache(maxsize=10_000, ttl=LATEST_VERSION_MAX_AGE)

_LATEST_VERSION = select(func.max(SurveyTemplate.version)).where(SurveyTemplate.template_id == bindparam("template_id"))


def get_template(
    uow: UnitOfWork, template_id: str, version: int | None = None, *, max_age: float = 0.0
) -> TemplateVersion | None:
    """A template version; the latest when ``version`` is None (with ``max_age`` > 0, as known at
    most ``LATEST_VERSION_MAX_AGE`` seconds ago)."""
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


def find_template(uow: UnitOfWork, template_id: str, version: int | None = None) -> TemplateVersion:
    """``get_template``, or NotFound."""
    template = get_template(uow, template_id, version)
    if template is None:
        said = f" version {version}" if version else ""
        raise NotFound(f"No template {template_id}{said}.")
    return template


def _latest_version(uow: UnitOfWork, template_id: str, max_age: float) -> int | None:
    key = (uow.database.url, template_id)
    if max_age > 0:
        known = _LATEST_VERSIONS.get(key)
        if known is not None:
            return known
    version = uow.session.execute(_LATEST_VERSION, {"template_id": template_id}).scalar_one_or_none()
    if version is not None:
        _LATEST_VERSIONS[key] = version
    return version


def latest_templates(uow: UnitOfWork, limit: int, offset: int) -> tuple[list[SurveyTemplate], int]:
    """One page of the latest version of every template (oldest template first), and how many there are."""
    latest = (
        select(SurveyTemplate.template_id, func.max(SurveyTemplate.version).label("version"))
        .group_by(SurveyTemplate.template_id)
        .subquery()
    )
    query = select(SurveyTemplate).join(
        latest, (SurveyTemplate.template_id == latest.c.template_id) & (SurveyTemplate.version == latest.c.version)
    )
    query = query.order_by(SurveyTemplate.created_at, SurveyTemplate.template_id)
    return page_of(uow.session, query, limit, offset, scalars=True)


def create_template_version(
    uow: UnitOfWork, *, template_id: str | None, name: str, questions: list[dict], comment_enabled: bool
) -> SurveyTemplate:
    """A new template (version 1), or the next version of an existing one; old versions stay answerable."""
    keys = [question["key"] for question in questions]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise Invalid({"questions": f"Question keys must be unique; repeated: {', '.join(duplicates)}."})
    if template_id is None:
        template_id, version = new_id(), 1
    else:
        current = get_template(uow, template_id)
        if current is None:
            raise Invalid({"id": f"No template {template_id}; leave it out to create a new template."})
        version = current.version + 1
    template = SurveyTemplate(
        template_id=template_id,
        version=version,
        name=name,
        questions=questions,
        comment_enabled=comment_enabled,
        created_at=utcnow(),
    )
    uow.session.add(template)
    try:
        uow.session.flush()
    except IntegrityError:
        raise Conflict(f"Version {version} of template {template_id} was created meanwhile; try again.") from None
    uow.commit()
    _LATEST_VERSIONS[(uow.database.url, template_id)] = version
    return template


def answerable_template(
    uow: UnitOfWork, template_id: str, version: int | None, *, max_age: float = 0.0
) -> TemplateVersion:
    """The template a response or link asks; Invalid naming ``template_id`` or ``template_version``."""
    row = get_template(uow, template_id, version, max_age=max_age)
    if row is None:
        if version is not None and get_template(uow, template_id) is not None:
            raise Invalid({"template_version": f"Template {template_id} has no version {version}."})
        raise Invalid({"template_id": f"No template {template_id}."})
    return row


def domain_template(row: TemplateVersion | SurveyTemplate) -> Template:
    return row.domain if isinstance(row, TemplateVersion) else Template.of(row.template_id, row.version, row.questions)
