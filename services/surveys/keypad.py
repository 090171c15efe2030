"""Use cases of keypad surveys (Twilio <Gather>): a response started with the call, one typed
answer at a time, settled when the caller reaches the end or hangs up."""

from __future__ import annotations

from sqlalchemy import select

from shared.db import get_or_not_found
from shared.models import utcnow
from shared.unit_of_work import UnitOfWork

from . import domain
from .domain import IN_PROGRESS, LowScoreRule, Provenance, Template
from .models import SurveyResponse
from .responses import columns_of, count_and_announce, insert_response, new_response, settle
from .survey_templates import answerable_template, domain_template, get_template


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
    template = answerable_template(uow, template_id, template_version)
    response = new_response(
        uow,
        template,
        customer_id,
        "keypad",
        language,
        Provenance(**{**provenance.__dict__, "call_id": call_id}),
        utcnow(),
    )
    insert_response(uow, response)
    uow.commit()
    return SurveyResponse(**response)


def keypad_response(uow: UnitOfWork, response_id: str) -> tuple[SurveyResponse, Template]:
    """The keypad response and its template; NotFound for an unknown id."""
    response = get_or_not_found(uow.session, SurveyResponse, response_id, "keypad survey")
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
    columns = columns_of(response)
    settle(columns, utcnow(), partial=partial)
    response.status, response.completed_at, response.day = columns["status"], columns["completed_at"], columns["day"]
    count_and_announce(uow, rule, template, columns)


def keypad_call_ended(uow: UnitOfWork, call_id: str) -> SurveyResponse | None:
    """The call ended (Twilio's status callback): a survey still under way is kept as partial."""
    response = uow.session.execute(
        select(SurveyResponse).where(SurveyResponse.call_id == call_id).with_for_update()
    ).scalar_one_or_none()
    if response is not None and response.status == IN_PROGRESS:
        _settle_stored(uow, None, None, response, partial=True)
        uow.commit()
    return response
