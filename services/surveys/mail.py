"""Survey invitations by mail: a signed link that reaches the customer.

``invite`` issues a single-use link and queues its mail in one transaction; the worker's
``mail_send`` job sends the queue (``shared.mail_outbox``). It is called by an agent or a system
(``POST /links/email``) and by the ``callentry.completed`` handler when a follow-up call's entry ends
without a survey: always for a campaign whose ``survey_delivery`` is ``link_by_email``, and for
on-call campaigns unless ``SURVEY_MAIL_AFTER_CALLS=0``; once per entry.

The customer's consent is respected: no address, ``marketing_consent`` false, or an opt-out means no
mail (the answer says why). Each mail carries ``List-Unsubscribe`` (a signed link, and one-click
POST per RFC 8058) and ``Auto-Submitted: auto-generated``. The mail is in the customer's ``language``
(optional on the replica) when the template has it, else in the language asked for, else English.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from itsdangerous import BadSignature, URLSafeSerializer
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import delete, exists, select

from shared import mail_outbox
from shared.errors import Invalid
from shared.event_catalog import NO_SURVEY_MAIL_OUTCOMES, SURVEY_MAIL_ENTRY_STATES
from shared.mail import MailSettings, format_address, new_message_id
from shared.models import new_id, utcnow
from shared.replicas import resolve_customer_id
from shared.unit_of_work import UnitOfWork

from . import domain, links
from .domain import Provenance
from .models import CustomerReplica, SurveyMail, SurveyMailOptOut, SurveyResponse
from .survey_templates import answerable_template

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates" / "mail"),
    autoescape=select_autoescape(["html"]),
    keep_trailing_newline=True,
)
UNSUBSCRIBE_SALT = "survey-mail-unsubscribe"
# What the mail says around the link, per language; the question is the template's own text.
WORDS = {
    "en": {
        "subject": "How did we do? One question",
        "greeting": "Hello {name},",
        "intro": "we would like to know how we did. It takes a minute:",
        "answer": "Answer the survey",
        "expires": "The link works once and until {date}.",
        "unsubscribe": "No more survey mails",
    },
    "de": {
        "subject": "Wie waren wir? Eine Frage",
        "greeting": "Hallo {name},",
        "intro": "wir möchten gern wissen, wie zufrieden Sie waren. Es dauert eine Minute:",
        "answer": "Zur Umfrage",
        "expires": "Der Link gilt einmal und bis zum {date}.",
        "unsubscribe": "Keine Umfrage-Mails mehr",
    },
    "fr": {
        "subject": "Comment avons-nous fait ? Une question",
        "greeting": "Bonjour {name},",
        "intro": "nous aimerions savoir comment nous avons fait. Cela prend une minute :",
        "answer": "Répondre à l'enquête",
        "expires": "Le lien fonctionne une fois, jusqu'au {date}.",
        "unsubscribe": "Plus de mails d'enquête",
    },
    "zh-Hans": {
        "subject": "我们做得怎么样？只有一个问题",
        "greeting": "{name}，您好：",
        "intro": "我们想了解我们的服务如何。只需一分钟：",
        "answer": "回答问卷",
        "expires": "此链接仅可使用一次，有效期至 {date}。",
        "unsubscribe": "不再接收问卷邮件",
    },
    "zh-Hant": {
        "subject": "我們做得怎麼樣？只有一個問題",
        "greeting": "{name}，您好：",
        "intro": "我們想了解我們的服務如何。只需一分鐘：",
        "answer": "回答問卷",
        "expires": "此連結僅可使用一次，有效期至 {date}。",
        "unsubscribe": "不再接收問卷郵件",
    },
    "tl": {
        "subject": "Kumusta ang serbisyo namin? Isang tanong lang",
        "greeting": "Kumusta, {name}:",
        "intro": "gusto naming malaman kung kumusta ang serbisyo namin. Isang minuto lang ito:",
        "answer": "Sagutan ang survey",
        "expires": "Isang beses lang gagana ang link, hanggang {date}.",
        "unsubscribe": "Ayoko na ng mga survey mail",
    },
}


def words_for(language: str) -> dict[str, str]:
    """What the mail says around the link in ``language`` (``de-AT`` finds ``de``, ``fil`` ``tl``),
    else in English."""
    return WORDS.get(language) or WORDS.get(domain.language_key(language)) or WORDS["en"]


class NotInvited(Exception):
    """Why no invitation was sent: ``reason`` is shown to whoever asked."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def choose_language(customer_language: str | None, asked: str | None, offered: list[str]) -> str:
    """The customer's language where the template has it (``de-AT`` finds ``de``, ``zh-TW``
    ``zh-Hant``), else the one asked for, else the template's first language."""
    return domain.choose_language(offered, customer_language, asked)


def unsubscribe_token(secret: str, customer_id: str) -> str:
    return URLSafeSerializer(secret, salt=UNSUBSCRIBE_SALT).dumps({"customer": customer_id})


def customer_of_unsubscribe(secret: str, token: str) -> str | None:
    try:
        payload = URLSafeSerializer(secret, salt=UNSUBSCRIBE_SALT).loads(token)
    except BadSignature:
        return None
    return payload.get("customer") if isinstance(payload, dict) else None


def invite(
    uow: UnitOfWork,
    mail: MailSettings,
    secret: str,
    public_base: str,
    *,
    customer_id: str,
    template_id: str,
    template_version: int | None = None,
    language: str | None = None,
    provenance: Provenance | None = None,
    expires_in: timedelta = timedelta(days=14),
) -> SurveyMail:
    """Issue a link and queue its invitation; raises NotInvited when the customer must not get one.
    Does not commit."""
    customer_id = resolve_customer_id(uow.session, CustomerReplica, customer_id)
    customer = uow.session.get(CustomerReplica, customer_id)
    if customer is None:
        raise NotInvited("The customer is not known here (yet).")
    if not customer.email:
        raise NotInvited("The customer has no e-mail address.")
    if not customer.marketing_consent:
        raise NotInvited("The customer has not consented to mail from us (marketing_consent).")
    if uow.session.get(SurveyMailOptOut, customer_id) is not None:
        raise NotInvited("The customer unsubscribed from survey mail.")
    template = answerable_template(uow, template_id, template_version)
    chosen = choose_language(getattr(customer, "language", None), language, template.domain.languages)
    provenance = provenance or Provenance()
    link, token = links.new_link(
        uow,
        secret,
        customer_id=customer_id,
        template_id=template.template_id,
        template_version=template.version,
        language=chosen,
        provenance=provenance,
        expires_in=expires_in,
    )
    words = words_for(chosen)
    unsubscribe = f"{public_base}/links/unsubscribe/{unsubscribe_token(secret, customer_id)}"
    context = {
        "words": words,
        "greeting": words["greeting"].format(name=customer.name),
        "expires": words["expires"].format(date=link.expires_at.date().isoformat()),
        "question": template.domain.questions[0].text(chosen) if template.domain.questions else "",
        "url": f"{public_base}/links/{token}",
        "unsubscribe_url": unsubscribe,
    }
    row = SurveyMail(
        id=new_id(),
        kind="invitation",
        status="queued",
        message_id=new_message_id(mail),
        customer_id=customer_id,
        link_id=link.link_id,
        entry_id=provenance.entry_id,
        language=chosen,
        from_address=mail.from_address,
        to_address=format_address(customer.name, customer.email),
        subject=words["subject"],
        body_text=TEMPLATES.get_template("invitation.txt").render(context),
        body_html=TEMPLATES.get_template("invitation.html").render(context),
        extra_headers={
            "Auto-Submitted": "auto-generated",
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        attempts=0,
        next_attempt_at=utcnow(),
        created_at=utcnow(),
    )
    uow.session.add(row)
    uow.session.flush()
    return row


def after_call(uow: UnitOfWork, mail: MailSettings, secret: str | None, public_base: str, data: dict, template_id):
    """A follow-up entry ended (completed or exhausted) with no survey given on it: invite by mail, once."""
    if not secret or template_id is None or data["entry_state"] not in SURVEY_MAIL_ENTRY_STATES:
        return None
    if data["outcome"] in NO_SURVEY_MAIL_OUTCOMES:
        return None
    entry_id = str(data["entry_id"])
    surveyed = uow.session.scalar(select(exists().where(SurveyResponse.entry_id == entry_id)))
    invited = uow.session.scalar(select(exists().where(SurveyMail.entry_id == entry_id)))
    if surveyed or invited:
        return None
    provenance = Provenance.of({**data, "entry_id": entry_id})
    try:
        return invite(
            uow,
            mail,
            secret,
            public_base,
            customer_id=str(data["customer_id"]),
            template_id=template_id,
            provenance=provenance,
        )
    except (NotInvited, Invalid):
        return None


def default_template_id(uow: UnitOfWork, settings) -> str | None:
    """The template of invitations after calls: SURVEY_MAIL_TEMPLATE_ID, else the default template."""
    return settings.option("SURVEY_MAIL_TEMPLATE_ID") or domain.DEFAULT_TEMPLATE_ID


def opt_out(uow: UnitOfWork, customer_id: str, now: datetime) -> None:
    if uow.session.get(SurveyMailOptOut, customer_id) is None:
        uow.session.add(SurveyMailOptOut(customer_id=customer_id, opted_out_at=now))
    uow.commit()


def send_queued(database, settings) -> int:
    """The worker's round over the invitation queue (shared.mail_outbox)."""
    return mail_outbox.send_round(database, settings, SurveyMail)


def erase_customer_mail(uow: UnitOfWork, customer_id: str) -> int:
    """Every survey mail and the opt-out of a customer, deleted (the erasure's one place for mail
    here). Does not commit."""
    uow.session.execute(delete(SurveyMailOptOut).where(SurveyMailOptOut.customer_id == customer_id))
    return uow.session.execute(delete(SurveyMail).where(SurveyMail.customer_id == customer_id)).rowcount
