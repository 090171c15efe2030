"""Read models of the surveys service: a customer's responses (the ``GET /responses`` collection),
the customer's survey summary (the gateway's customer view and ``/customers/{id}/surveys``), and the
metrics report, read from the rollups only (the figures themselves are ``domain.metrics_report``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import bindparam, case, func, select

from shared.events import isoformat_utc
from shared.models import utcnow
from shared.replicas import resolve_customer_id
from shared.schemas import page_of
from shared.unit_of_work import UnitOfWork

from . import domain
from .domain import COMPLETE, IN_PROGRESS, Sums
from .models import CustomerReplica, SurveyAnswerRollup, SurveyCount, SurveyMail, SurveyResponse, SurveyTemplate
from .rollups import SUM_COLUMNS
from .survey_templates import get_template

# --- a customer's responses ---------------------------------------------------------------


def responses_of_customer(
    uow: UnitOfWork, customer_id: str, limit: int, offset: int
) -> tuple[list[SurveyResponse], int]:
    """One page of a customer's settled responses, newest first, and how many there are in all
    (a merged-away customer's id reaches the survivor's)."""
    customer_id = resolve_customer_id(uow.session, CustomerReplica, customer_id)
    query = (
        select(SurveyResponse)
        .where(SurveyResponse.customer_id == customer_id, SurveyResponse.status != IN_PROGRESS)
        .order_by(SurveyResponse.started_at.desc(), SurveyResponse.response_id)
    )
    items, total = page_of(uow.session, query, limit, offset, scalars=True)
    for item in items:  # not a column: the answers as the version answered asked them
        item.answered = answered_questions(uow, item.template_id, item.template_version, item.language, item.answers)
    return items, total


def answered_questions(uow: UnitOfWork, template_id: str, version: int, language: str, answers: dict) -> list[dict]:
    """Each answer with its question's key, kind and label (in ``language``) in the template version
    answered, in asking order; an answer the version does not know (never stored) as a rating."""
    found = get_template(uow, template_id, version)
    questions = found.domain.questions if found else ()
    answered = []
    for question in questions:
        if question.key in answers:
            offered = list(question.texts)
            label = question.texts[domain.choose_language(offered, language)] if offered else question.key
            answered.append(
                {"key": question.key, "kind": question.kind, "label": label, "score": answers[question.key]}
            )
    known = {question.key for question in questions}
    answered += [
        {"key": key, "kind": domain.RATING, "label": key, "score": score}
        for key, score in answers.items()
        if key not in known
    ]
    return answered


def score_trend(responses, kinds: dict[str, dict[str, str]] | None = None) -> dict:
    """Per question, the completed responses' scores oldest first, with first, latest, change, mean;
    each point names its template version and the question's kind there (``kinds``: response id ->
    key -> kind, from the versions answered)."""
    kinds = kinds or {}
    trend: dict[str, list[dict]] = {}
    for response in sorted(
        (r for r in responses if r.status == COMPLETE), key=lambda r: (domain.as_utc(r.completed_at), r.response_id)
    ):
        for key, score in response.answers.items():
            trend.setdefault(key, []).append(
                {
                    "completed_at": isoformat_utc(domain.as_utc(response.completed_at)),
                    "score": score,
                    "response_id": response.response_id,
                    "template_id": response.template_id,
                    "template_version": response.template_version,
                    "kind": kinds.get(response.response_id, {}).get(key, domain.RATING),
                }
            )
    return {
        key: {
            "points": points,
            "first": points[0]["score"],
            "latest": points[-1]["score"],
            "change": points[-1]["score"] - points[0]["score"],
            "mean": sum(point["score"] for point in points) / len(points),
        }
        for key, points in trend.items()
    }


SUMMARY_LIMIT = 20  # the survey summary's latest responses, unless asked otherwise
SUMMARY_MAX = 50
HISTORY_LIMIT = 200  # /customers/{id}/surveys: the latest 200 responses, and the trend over them
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


def response_json(uow: UnitOfWork, row) -> dict:
    """A response as ``ResponseOut`` answers it (``id`` its own id), from a row of its columns."""
    response = {"id": row.response_id}
    for name in _SUMMARY_COLUMNS[1:-2]:
        response[name] = getattr(row, name)
    response["answered"] = answered_questions(uow, row.template_id, row.template_version, row.language, row.answers)
    response["started_at"] = isoformat_utc(domain.as_utc(row.started_at))
    response["completed_at"] = isoformat_utc(domain.as_utc(row.completed_at)) if row.completed_at else None
    return response


def customer_survey_summary(uow: UnitOfWork, customer_id: str, limit: int = SUMMARY_LIMIT) -> dict:
    """A customer's surveys as one object of JSON values: the latest ``limit`` responses (``recent``,
    newest first, with ``recent_limit``), how many responses there are (``response_count``, of which
    ``completed_count`` complete), and per question the score trend over the recent ones.

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
    recent = [response_json(uow, row) for row in rows]
    kinds = {response["id"]: {a["key"]: a["kind"] for a in response["answered"]} for response in recent}
    return {
        "customer_id": survivor,
        "recent": recent,
        "recent_limit": limit,
        "response_count": total,
        "completed_count": completed,
        "trend": score_trend(rows, kinds),
        "mails": [_mail_json(row) for row in connection.execute(_LATEST_MAILS, params)],
    }


MAIL_LIMIT = 20  # the customer's latest survey invitations in the summary
_LATEST_MAILS = (
    select(
        SurveyMail.id,
        SurveyMail.status,
        SurveyMail.subject,
        SurveyMail.to_address,
        SurveyMail.language,
        SurveyMail.created_at,
        SurveyMail.sent_at,
    )
    .where(SurveyMail.customer_id == bindparam("customer_id"))
    .order_by(SurveyMail.created_at.desc(), SurveyMail.id.desc())
    .limit(MAIL_LIMIT)
)


def _mail_json(row) -> dict:
    """A survey invitation as the customer's timeline lists it beside the service desk's mails."""
    return {
        "id": row.id,
        "direction": "out",
        "kind": "survey_invitation",
        "status": row.status,
        "subject": row.subject,
        "to_address": row.to_address,
        "language": row.language,
        "created_at": isoformat_utc(domain.as_utc(row.created_at)),
        "sent_at": isoformat_utc(domain.as_utc(row.sent_at)) if row.sent_at else None,
    }


# --- metrics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsQuery:
    start: date
    end: date  # inclusive
    group_by: tuple[str, ...]  # at most one time dimension and one attribute dimension
    template_id: str | None
    min_n: int
    language: str | None = None  # of the questions' labels; default each version's first language

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
            self.language,
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


def read_rollups(uow: UnitOfWork, query: MetricsQuery) -> dict[tuple, dict[domain.FigureKey, Sums]]:
    """(period, group value) -> (template_id, question, kind) -> sums over the query's days.

    Rows already at the report's grain (day rows by day, week rows by week) are read as stored (one
    per template, question and kind); rows that several of a group's days add up to are summed in
    the database. Templates and kinds are never added together.
    """
    table = SurveyAnswerRollup.__table__
    time_dimension, attribute_dimension = query.time_dimension, query.attribute_dimension
    keys = [table.c.day] if time_dimension else []
    keys += [table.c.value, table.c.template_id, table.c.question, table.c.kind]
    sums = [func.sum(table.c[column]).label(column) for column in SUM_COLUMNS]
    timed = 1 if time_dimension else 0
    first_sum = timed + 4
    result: dict[tuple, dict[domain.FigureKey, Sums]] = {}
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
            statement = select(*keys, *(table.c[column] for column in SUM_COLUMNS)).where(*conditions)
        else:
            statement = select(*keys, *sums).where(*conditions).group_by(*keys)
        weeks: dict[str, str] = {}  # day -> its week, for day rows in a report by week
        for row in uow.session.connection().execute(statement):
            n = row[first_sum]
            if not n:
                continue  # a bucket emptied when its responses moved to their product
            period = None
            if time_dimension:
                period = row[0]
                if time_dimension != span:  # day rows at the edges of a report by week
                    period = weeks.get(period) or weeks.setdefault(period, domain.week_of(period))
            group = (period, row[timed] if attribute_dimension else None)
            question = (row[timed + 1], row[timed + 2], row[timed + 3])
            found = Sums(
                n=int(n),
                total=int(row[first_sum + 1]),
                squares=int(row[first_sum + 2]),
                counts=[int(count) for count in row[first_sum + 3 :]],
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


def template_versions(uow: UnitOfWork, template_id: str | None = None) -> list[domain.Template]:
    """Every stored template version (of one template), as domain templates."""
    statement = select(SurveyTemplate.template_id, SurveyTemplate.version, SurveyTemplate.questions)
    if template_id:
        statement = statement.where(SurveyTemplate.template_id == template_id)
    return [domain.Template.of(*row) for row in uow.session.execute(statement)]


def metrics(uow: UnitOfWork, query: MetricsQuery) -> dict:
    """Per group, template and question: n, mean with t-interval, distribution, CSAT with Wilson,
    NPS (questions answered as ``recommend``), change; each figure names the versions it covers."""
    previous_query = None if query.time_dimension else query.previous()
    groups = domain.metrics_report(
        time_dimension=query.time_dimension,
        attribute_dimension=query.attribute_dimension,
        min_n=query.min_n,
        current=read_rollups(uow, query),
        counts=read_counts(uow, query),
        previous=read_rollups(uow, previous_query) if previous_query else {},
        covers=domain.question_groups(template_versions(uow, query.template_id), query.language),
    )
    return {
        "from": query.start.isoformat(),
        "to": query.end.isoformat(),
        "group_by": list(query.group_by),
        "template_id": query.template_id,
        "language": query.language,
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
    return utcnow().date()
