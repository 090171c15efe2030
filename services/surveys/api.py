"""HTTP routes of the surveys service, and the schemas that are also its OpenAPI spec.

Survey metrics are served at ``GET /survey-metrics``: ``/metrics`` is every service's
Prometheus endpoint (``shared.web``) and keeps that meaning.
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlencode

from flask import Response, current_app, jsonify, request
from flask import abort as fail  # fail(status, detail): a problem+json with that detail
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from twilio.twiml.voice_response import VoiceResponse

from shared.auth import acting_agent, acting_user, public
from shared.config import Settings
from shared.errors import Invalid
from shared.event_catalog import SURVEY_CHANNELS
from shared.problems import problem
from shared.replicas import customer_replica_blueprint
from shared.schemas import Timestamp, page, page_args, page_schema
from shared.web import unit_of_work
from shared.webhooks import NO_ANSWER, TWIML_ANSWER, signed

from . import domain, survey_templates, views
from . import keypad as keypad_surveys
from . import links as web_links
from . import responses as survey_responses
from .domain import COMPLETE, IN_PROGRESS, Provenance
from .models import CustomerReplica

customer_replicas = customer_replica_blueprint(CustomerReplica, unit_of_work)
templates = Blueprint("templates", __name__, url_prefix="/templates", description="Versioned survey templates")
responses = Blueprint("responses", __name__, description="Survey responses and a customer's survey history")
links = Blueprint("links", __name__, url_prefix="/links", description="Signed, expiring, single-use web surveys")
survey_metrics = Blueprint("survey_metrics", __name__, description="Metrics from the rollups")
keypad = Blueprint("keypad", __name__, url_prefix="/webhooks/twilio/survey", description="Keypad surveys (Twilio)")

# BCP 47 as the templates key their texts: en, de, fr, tl, zh-Hans, zh-Hant (and region forms such as de-CH).
CUSTOMERS_LANGUAGE = "default: the customer's language, else the template's first"
LANGUAGE = validate.Regexp(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$", error="A language tag such as en, de or zh-Hant.")
QUESTION_KEY = validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$", error="Lower-case letters, digits and _, 1 to 64.")
MAX_LINK_DAYS = 90


def settings() -> Settings:
    return current_app.extensions["settings"]


# --- templates ----------------------------------------------------------------------------


class QuestionSchema(Schema):
    key = fields.String(required=True, validate=QUESTION_KEY)
    kind = fields.String(load_default="rating", validate=validate.OneOf(("rating", "recommend")))
    required = fields.Boolean(load_default=True)
    texts = fields.Dict(
        keys=fields.String(validate=LANGUAGE),
        values=fields.String(validate=validate.Length(min=1, max=500)),
        required=True,
        validate=validate.Length(min=1, max=50, error="One to 50 languages."),
    )


class TemplateIn(Schema):
    id = fields.UUID(load_default=None, metadata={"description": "Set to add a version to this template."})
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    questions = fields.List(fields.Nested(QuestionSchema), required=True, validate=validate.Length(min=1, max=20))
    comment_enabled = fields.Boolean(load_default=True)


def _languages(template) -> list[str]:
    questions = template["questions"] if isinstance(template, dict) else template.questions
    return list(questions[0]["texts"]) if questions else []


class TemplateOut(Schema):
    id = fields.String(attribute="template_id")
    version = fields.Integer()
    name = fields.String()
    questions = fields.List(fields.Nested(QuestionSchema))
    # In the template's order (JSON objects come out with sorted keys): the first is the fallback language.
    languages = fields.Function(_languages, metadata={"description": "the languages of its texts, first the fallback"})
    comment_enabled = fields.Boolean()
    scale = fields.Constant({"min": 1, "max": 10})
    created_at = Timestamp()


class TemplateVersionArgs(Schema):
    version = fields.Integer(load_default=None, validate=validate.Range(min=1))


TemplatesArgs = page_args(default=50, maximum=500, name="TemplatesArgs")
TemplatePage = page_schema(TemplateOut, "TemplatePage")


@templates.route("")
class Templates(MethodView):
    @templates.arguments(TemplatesArgs(), location="query")
    @templates.response(200, TemplatePage)
    def get(self, args):
        """The latest version of every template, oldest template first."""
        with unit_of_work(read_only=True) as uow:
            items, total = survey_templates.latest_templates(uow, args["limit"], args["offset"])
            return page(items, total, args)

    @templates.arguments(TemplateIn())
    @templates.response(201, TemplateOut)
    def post(self, body):
        """A new template, or (with ``id``) its next version; earlier versions stay answerable."""
        with unit_of_work() as uow:
            return survey_templates.create_template_version(
                uow,
                template_id=str(body["id"]) if body["id"] else None,
                name=body["name"],
                questions=body["questions"],
                comment_enabled=body["comment_enabled"],
            )


@templates.route("/<template_id>")
class TemplateById(MethodView):
    @templates.arguments(TemplateVersionArgs(), location="query")
    @templates.response(200, TemplateOut)
    def get(self, args, template_id):
        """A template: its latest version, or ``?version=``."""
        with unit_of_work(read_only=True) as uow:
            return survey_templates.find_template(uow, template_id, args["version"])


# --- responses ----------------------------------------------------------------------------


class ProvenanceFields(Schema):
    agent_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    call_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    entry_id = fields.UUID(load_default=None, allow_none=True)
    campaign_id = fields.UUID(load_default=None, allow_none=True)
    purchase_id = fields.UUID(load_default=None, allow_none=True)


class AnswersFields(Schema):
    answers = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=64)),
        values=fields.Raw(allow_none=True),
        required=True,
        validate=validate.Length(max=20),  # a template has at most 20 questions
        metadata={"description": "question key -> a whole number 1..10"},
    )
    comment = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))
    partial = fields.Boolean(
        load_default=False, metadata={"description": "The customer stopped midway: stored, counted apart."}
    )


class ResponseIn(ProvenanceFields, AnswersFields):
    template_id = fields.UUID(load_default=lambda: domain.DEFAULT_TEMPLATE_ID)
    template_version = fields.Integer(load_default=None, validate=validate.Range(min=1))
    customer_id = fields.UUID(required=True)
    channel = fields.String(load_default="agent", validate=validate.OneOf(SURVEY_CHANNELS))
    language = fields.String(
        load_default=None,
        validate=LANGUAGE,
        metadata={"description": CUSTOMERS_LANGUAGE},
    )

    @validates_schema
    def _agent_channel_names_the_agent(self, data, **_kwargs):
        # An agent's own response names them by itself (shared.auth.acting_agent).
        if data.get("channel") == "agent" and not data.get("agent_id") and acting_user().role != "agent":
            raise ValidationError("An agent-channel response names its agent.", "agent_id")


class ResponseOut(Schema):
    id = fields.String(attribute="response_id")
    template_id = fields.String()
    template_version = fields.Integer()
    customer_id = fields.String()
    channel = fields.String()
    status = fields.String(metadata={"description": "complete, partial or in_progress (a keypad call under way)"})
    agent_id = fields.String(allow_none=True)
    call_id = fields.String(allow_none=True)
    entry_id = fields.String(allow_none=True)
    campaign_id = fields.String(allow_none=True)
    purchase_id = fields.String(allow_none=True)
    product = fields.String(allow_none=True)
    answers = fields.Dict(keys=fields.String(), values=fields.Integer())
    answered = fields.List(
        fields.Dict(),
        metadata={
            "description": "each answer with its question as the version answered asks it, in asking order: "
            "{key, kind, label (in the response's language), score}"
        },
    )
    comment = fields.String(allow_none=True)
    language = fields.String()
    started_at = Timestamp()
    completed_at = Timestamp(allow_none=True)


class ResponseCreatedOut(ResponseOut):
    low_questions = fields.List(
        fields.String(),
        metadata={
            "description": "the questions the low-score rule found low: non-empty means survey.low_score was "
            "announced and the tickets service opens a service-recovery ticket for this response"
        },
    )


class ResponsesArgs(page_args(default=50, maximum=500, name="ResponsesPageArgs")):
    customer_id = fields.UUID(required=True)


ResponsePage = page_schema(ResponseOut, "ResponsePage")


class TrendPoint(Schema):
    completed_at = Timestamp()
    score = fields.Integer()
    response_id = fields.String()
    template_id = fields.String()
    template_version = fields.Integer()
    kind = fields.String(metadata={"description": "the question's kind in the version answered"})


class QuestionTrend(Schema):
    points = fields.List(fields.Nested(TrendPoint))
    first = fields.Integer()
    latest = fields.Integer()
    change = fields.Integer()
    mean = fields.Float()


class SurveyMailBrief(Schema):
    id = fields.String()
    direction = fields.String(metadata={"description": "out: survey mail only goes to the customer"})
    kind = fields.String(metadata={"description": "survey_invitation"})
    status = fields.String(metadata={"description": "queued, sent or failed"})
    subject = fields.String()
    to_address = fields.String()
    language = fields.String()
    created_at = Timestamp()
    sent_at = Timestamp(allow_none=True)


class CustomerSurveysOut(Schema):
    """A customer's surveys: one object, not a collection (its list is bounded and says its bound)."""

    customer_id = fields.String()
    recent = fields.List(fields.Nested(ResponseOut), metadata={"description": "the latest responses, newest first"})
    recent_limit = fields.Integer(metadata={"description": "at most this many in recent"})
    response_count = fields.Integer(metadata={"description": "every response (complete and partial)"})
    completed_count = fields.Integer()
    trend = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(QuestionTrend),
        metadata={"description": "per question, the scores of the recent responses over time"},
    )
    mails = fields.List(
        fields.Nested(SurveyMailBrief), metadata={"description": "the latest 20 survey invitations, newest first"}
    )


def _provenance(body) -> Provenance:
    """Where a response or link came from; its agent is the signed-in agent (supervisors name anyone)."""
    return Provenance.of({**body, "agent_id": acting_agent(body.get("agent_id"))})


@responses.route("/responses")
class Responses(MethodView):
    @responses.arguments(ResponsesArgs(), location="query")
    @responses.response(200, ResponsePage)
    def get(self, args):
        """A customer's responses, newest first (a merged-away customer's id reaches the survivor's)."""
        with unit_of_work(read_only=True) as uow:
            items, total = views.responses_of_customer(uow, str(args["customer_id"]), args["limit"], args["offset"])
            return page(items, total, args)

    @responses.arguments(ResponseIn())
    @responses.response(201, ResponseCreatedOut)
    def post(self, body):
        """Record a response; 409 when its call or call-list entry already has one.

        Announces ``survey.completed`` (and ``survey.low_score`` when the rule matches) unless
        ``partial``; ``low_questions`` says which answers the rule found low.
        """
        with unit_of_work() as uow:
            return survey_responses.submit_response(
                uow,
                survey_responses.low_score_rule(settings()),
                template_id=str(body["template_id"]),
                template_version=body["template_version"],
                customer_id=str(body["customer_id"]),
                channel=body["channel"],
                answers=body["answers"],
                comment=body["comment"],
                language=body["language"],
                partial=body["partial"],
                provenance=_provenance(body),
            )


@responses.route("/customers/<customer_id>/surveys")
class CustomerSurveys(MethodView):
    @responses.response(200, CustomerSurveysOut)
    def get(self, customer_id):
        """A customer's latest 200 responses (``recent``, with ``recent_limit``), how many there are,
        and per question the scores over time; ``GET /responses`` pages through all of them."""
        with unit_of_work(read_only=True) as uow:
            return jsonify(views.customer_survey_summary(uow, customer_id, views.HISTORY_LIMIT))


class SurveySummaryQuery(Schema):
    recent_limit = fields.Integer(
        load_default=views.SUMMARY_LIMIT,
        validate=validate.Range(min=1, max=views.SUMMARY_MAX),
        metadata={
            "description": f"how many of the latest responses (the trend is over them), "
            f"{views.SUMMARY_LIMIT} unless said, at most {views.SUMMARY_MAX}"
        },
    )


@responses.route("/customers/<customer_id>/survey-summary")
class CustomerSurveySummary(MethodView):
    @responses.arguments(SurveySummaryQuery(), location="query")
    @responses.response(200, CustomerSurveysOut)
    def get(self, args, customer_id):
        """The latest responses (``recent``, at most ``recent_limit``), the counts and the score trend
        over them: the surveys' part of the gateway's customer view. One object, not a collection;
        ``GET /responses?customer_id=`` pages through every response."""
        with unit_of_work(read_only=True) as uow:
            summary = views.customer_survey_summary(uow, customer_id, args["recent_limit"])
        return jsonify(summary)  # already JSON values (ResponseOut's): no marshmallow dump on the view's path


# --- web links ----------------------------------------------------------------------------


class LinkIn(ProvenanceFields):
    customer_id = fields.UUID(required=True)
    template_id = fields.UUID(load_default=lambda: domain.DEFAULT_TEMPLATE_ID)
    template_version = fields.Integer(load_default=None, validate=validate.Range(min=1))
    language = fields.String(
        load_default=None,
        validate=LANGUAGE,
        metadata={"description": CUSTOMERS_LANGUAGE},
    )
    expires_in = fields.Integer(
        load_default=7 * 24 * 3600,
        validate=validate.Range(min=60, max=MAX_LINK_DAYS * 24 * 3600),
        metadata={"description": "seconds until the link expires (60 s to 90 days; 7 days by default)"},
    )


class LinkOut(Schema):
    id = fields.String(attribute="link_id")
    url = fields.String()
    token = fields.String()
    expires_at = Timestamp()


class LinkQuestion(Schema):
    key = fields.String()
    text = fields.String()
    required = fields.Boolean()


class LinkSurveyOut(Schema):
    language = fields.String()
    scale = fields.Constant({"min": 1, "max": 10})
    questions = fields.List(fields.Nested(LinkQuestion))
    comment_enabled = fields.Boolean()
    expires_at = Timestamp()


class LinkAnswerOut(Schema):
    response_id = fields.String()
    status = fields.String()


def _link_secret() -> str:
    secret = settings().option("SURVEY_LINK_SECRET")
    if not secret:
        fail(503, "SURVEY_LINK_SECRET is not configured; survey links are not issued or answered.")
    return secret


@links.errorhandler(web_links.LinkExpired)
def _expired(error: web_links.LinkExpired):
    """A link past its time is gone (410), not missing: the one domain error without a shared status."""
    return problem(410, "Gone", error.detail)


@links.route("")
class Links(MethodView):
    @links.arguments(LinkIn())
    @links.response(201, LinkOut)
    def post(self, body):
        """Issue a signed, expiring, single-use survey link for a customer."""
        secret = _link_secret()
        with unit_of_work() as uow:
            link, token = web_links.issue_link(
                uow,
                secret,
                customer_id=str(body["customer_id"]),
                template_id=str(body["template_id"]),
                template_version=body["template_version"],
                language=body["language"],
                provenance=_provenance(body),
                expires_in=timedelta(seconds=body["expires_in"]),
            )
        base = settings().public_base_url or request.host_url.rstrip("/")
        return {"link_id": link.link_id, "url": f"{base}/links/{token}", "token": token, "expires_at": link.expires_at}


@links.route("/<token>")
@public  # the customer's own link: the signed token is the credential
class LinkByToken(MethodView):
    @links.response(200, LinkSurveyOut)
    def get(self, token):
        """The link's questions in its language; 404 not ours, 410 expired, 409 already used."""
        secret = _link_secret()
        with unit_of_work(read_only=True) as uow:
            link, template = web_links.open_link(uow, secret, token)
            questions = survey_templates.domain_template(template).questions
            return {
                "language": link.language,
                "questions": [{"key": q.key, "text": q.text(link.language), "required": q.required} for q in questions],
                "comment_enabled": template.comment_enabled,
                "expires_at": link.expires_at,
            }

    @links.arguments(AnswersFields())
    @links.response(201, LinkAnswerOut)
    def post(self, body, token):
        """Answer through the link, once."""
        secret = _link_secret()
        with unit_of_work() as uow:
            return web_links.submit_by_link(
                uow,
                survey_responses.low_score_rule(settings()),
                secret,
                token,
                answers=body["answers"],
                comment=body["comment"],
                partial=body["partial"],
            )


# --- metrics ------------------------------------------------------------------------------


class MetricsArgs(Schema):
    from_ = fields.Date(data_key="from", load_default=None, metadata={"description": "first day (UTC), inclusive"})
    to = fields.Date(load_default=None, metadata={"description": "last day (UTC), inclusive; default today"})
    group_by = fields.String(
        load_default="",
        metadata={"description": "up to one of day|week and one of product|agent|campaign|channel, comma-separated"},
    )
    template_id = fields.UUID(load_default=None)
    min_n = fields.Integer(load_default=None, validate=validate.Range(min=1, max=100_000))
    language = fields.String(
        load_default=None,
        validate=validate.Length(min=2, max=16),
        metadata={"description": "the questions' labels in this language (else each version's first language)"},
    )

    @validates_schema
    def _check(self, data, **_kwargs):
        names = [name.strip() for name in data.get("group_by", "").split(",") if name.strip()]
        known = (*domain.TIME_DIMENSIONS, *domain.ATTRIBUTE_DIMENSIONS)
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValidationError(f"Unknown: {', '.join(unknown)}; choose from {', '.join(known)}.", "group_by")
        if sum(name in domain.TIME_DIMENSIONS for name in names) > 1:
            raise ValidationError("At most one of day and week.", "group_by")
        if sum(name in domain.ATTRIBUTE_DIMENSIONS for name in names) > 1:
            raise ValidationError("At most one of product, agent, campaign and channel.", "group_by")
        start, end = data.get("from_"), data.get("to")
        if start and end and start > end:
            raise ValidationError("from is after to.", "from")
        if start and end and (end - start).days > 3660:
            raise ValidationError("At most ten years at once.", "from")


# A report is a fresh tree of dicts and lists, never cyclic: the encoder need not track what it has
# entered (about a tenth of the encoding time of a large report).
_REPORT_JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False)


class MetricsOut(Schema):
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()
    group_by = fields.List(fields.String())
    template_id = fields.String(allow_none=True)
    language = fields.String(allow_none=True)
    min_n = fields.Integer()
    confidence = fields.Float()
    compared_with = fields.Dict()
    groups = fields.List(
        fields.Dict(),
        metadata={
            "description": "per (day|week, group): responses {completed, partial}, contacts {reached, no_contact, "
            "refused, callback_requested}, response_rate, and questions: a list, one per template, question "
            "key and kind as answered, [{template_id, key, kind, versions (the template versions the figure "
            "covers), label, n, distribution, withheld, withheld_reason, mean, csat, nps (recommend only), "
            "change}]"
        },
    )


@survey_metrics.route("/survey-metrics")
class SurveyMetrics(MethodView):
    @survey_metrics.arguments(MetricsArgs(), location="query")
    @survey_metrics.response(200, MetricsOut)
    def get(self, args):
        """Per group, and per template, question and kind as answered (never pooled across
        templates; each figure names its ``template_id``, ``versions``, ``kind`` and ``label``): n,
        mean with a t-interval, the distribution, CSAT (top-two box, share >= 9) with a Wilson
        interval, the 1-10 NPS with the adjusted-Wald interval (recommend questions only), the
        response rate, and the change against the previous period with its significance; figures
        with fewer than ``min_n`` answers are withheld and flagged. Read from the rollups only."""
        end = args["to"] or views.now_date()
        start = args["from_"] or end - timedelta(days=29)
        if start > end:
            raise Invalid({"from": "from is after to."}, location="query")
        min_n = args["min_n"] or int(settings().option("SURVEY_MIN_N", "30"))
        query = views.MetricsQuery(
            start=start,
            end=end,
            group_by=tuple(name.strip() for name in args["group_by"].split(",") if name.strip()),
            template_id=str(args["template_id"]) if args["template_id"] else None,
            min_n=min_n,
            language=args["language"],
        )
        with unit_of_work(read_only=True) as uow:
            report = views.metrics(uow, query)
        # Serialised here, compact and unsorted: a year by week and product is hundreds of kilobytes.
        return Response(_REPORT_JSON.encode(report), mimetype="application/json")


# --- keypad surveys (Twilio <Gather>) -----------------------------------------------------


class KeypadStartArgs(ProvenanceFields):
    customer_id = fields.UUID(required=True)
    template_id = fields.UUID(load_default=lambda: domain.DEFAULT_TEMPLATE_ID)
    template_version = fields.Integer(load_default=None, validate=validate.Range(min=1))
    language = fields.String(
        load_default=None,
        validate=validate.OneOf(sorted(domain.KEYPAD_PHRASES)),
        metadata={"description": CUSTOMERS_LANGUAGE},
    )


def _twiml(voice: VoiceResponse) -> Response:
    return Response(str(voice), mimetype="application/xml")


def _phrases(language: str) -> dict:
    return domain.KEYPAD_PHRASES.get(language, domain.KEYPAD_PHRASES["en"])


def _ask(voice: VoiceResponse, response_id: str, question: domain.Question, attempt: int, language: str) -> None:
    phrases = _phrases(language)
    action = f"{keypad.url_prefix}/answer?" + urlencode(
        {"response": response_id, "question": question.key, "attempt": attempt}
    )
    gather = voice.gather(input="dtmf", finish_on_key="#", num_digits=2, action=action, method="POST", timeout=8)
    gather.say(f"{question.text(language)} {phrases['instructions']}", language=phrases["voice_language"])
    voice.redirect(action, method="POST")  # no input before the timeout counts as an invalid answer


def _goodbye(voice: VoiceResponse, response, language: str) -> Response:
    phrases = _phrases(language)
    text = phrases["thanks"] if response.status == COMPLETE else phrases["incomplete"]
    voice.say(text, language=phrases["voice_language"])
    voice.hangup()
    return _twiml(voice)


@keypad.route("", methods=["POST"])
@keypad.doc(**TWIML_ANSWER)
@signed("twilio")
def keypad_start():
    """Start (or, on a retried webhook, resume) the keypad survey of this call: the first question.

    Provenance in the query string: ``customer_id`` (required), ``template_id``, ``language``
    (en, de), ``agent_id``, ``entry_id``, ``campaign_id``, ``purchase_id``; the call is ``CallSid``.
    """
    try:
        args = KeypadStartArgs().load({**request.args.to_dict(), **_form_except_twilio()})
    except ValidationError as error:
        abort(422, messages={"query": error.messages})
    call_id = request.form.get("CallSid", "")
    if not call_id:
        abort(422, messages={"form": {"CallSid": ["The call's id is required."]}})
    with unit_of_work() as uow:
        response = keypad_surveys.start_keypad_survey(
            uow,
            call_id=call_id,
            customer_id=str(args["customer_id"]),
            template_id=str(args["template_id"]),
            template_version=args["template_version"],
            language=args["language"],
            provenance=_provenance(args),
        )
    with unit_of_work(read_only=True) as uow:
        response, template = keypad_surveys.keypad_response(uow, response.response_id)
    voice = VoiceResponse()
    if response.status != IN_PROGRESS:
        return _goodbye(voice, response, response.language)
    pending = [q for q in template.questions if q.key not in response.answers]
    if not pending:
        with unit_of_work() as uow:
            response = keypad_surveys.finish_keypad_survey(
                uow, survey_responses.low_score_rule(settings()), response.response_id
            )
        return _goodbye(voice, response, response.language)
    voice.say(_phrases(response.language)["intro"], language=_phrases(response.language)["voice_language"])
    _ask(voice, response.response_id, pending[0], 0, response.language)
    return _twiml(voice)


def _form_except_twilio() -> dict:
    # Twilio posts its own parameters (CallSid, From, ...), all capitalised; ours are lower-case.
    return {key: value for key, value in request.form.items() if key[:1].islower()}


@keypad.route("/answer", methods=["POST"])
@keypad.doc(**TWIML_ANSWER)
@signed("twilio")
def keypad_answer():
    """One typed answer (``Digits``): the next question, a reprompt (at most twice), or goodbye.

    After the last reprompt an optional question is skipped; a required one ends the call's
    survey as partial.
    """
    response_id = request.args.get("response", "")
    key = request.args.get("question", "")
    try:
        attempt = int(request.args.get("attempt", "0"))
    except ValueError:
        abort(422, messages={"query": {"attempt": ["Not a number."]}})
    with unit_of_work(read_only=True) as uow:
        response, template = keypad_surveys.keypad_response(uow, response_id)
    question = template.question(key)
    if question is None:
        abort(422, messages={"query": {"question": [f"No question {key!r} in this survey."]}})
    language = response.language
    voice = VoiceResponse()
    if response.status != IN_PROGRESS:
        return _goodbye(voice, response, language)
    score = domain.parse_keypad_digits(request.form.get("Digits"))
    if score is None and attempt < domain.KEYPAD_REPROMPTS:
        voice.say(_phrases(language)["invalid"], language=_phrases(language)["voice_language"])
        _ask(voice, response.response_id, question, attempt + 1, language)
        return _twiml(voice)
    rule = survey_responses.low_score_rule(settings())
    with unit_of_work() as uow:
        response = keypad_surveys.record_keypad_answer(uow, response_id, key, score)
    following = template.keys[template.keys.index(key) + 1 :]
    if (score is None and question.required) or not following:
        with unit_of_work() as uow:
            response = keypad_surveys.finish_keypad_survey(uow, rule, response_id)
        return _goodbye(voice, response, language)
    _ask(voice, response.response_id, template.question(following[0]), 0, language)
    return _twiml(voice)


@keypad.route("/status", methods=["POST"])
@keypad.doc(**NO_ANSWER)
@signed("twilio")
def keypad_status():
    """Twilio's status callback: a call that ended with its survey under way leaves a partial response."""
    if request.form.get("CallStatus") in ("completed", "busy", "failed", "no-answer", "canceled"):
        with unit_of_work() as uow:
            keypad_surveys.keypad_call_ended(uow, request.form.get("CallSid", ""))
    return Response(status=204)
