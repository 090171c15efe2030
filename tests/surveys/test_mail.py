"""Survey invitations by mail through a real SMTP server (aiosmtpd): the link arrives and opens the
survey, in the customer's language where the template has it, with consent and unsubscribe respected."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from services.surveys import mail
from services.surveys.models import SurveyMail, SurveyMailOptOut
from tests.support.auth import signed_client
from tests.support.mailservers import SmtpSink
from tests.surveys.conftest import ANSWERS, LINK_SECRET, make_surveys_app
from tests.surveys.test_events import contact, deliver

DESK = "surveys@desk.example"


@pytest.fixture
def smtp_server():
    server = SmtpSink()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_options(smtp_server, monkeypatch):
    options = {
        "MAIL_SMTP_HOST": "127.0.0.1",
        "MAIL_SMTP_PORT": str(smtp_server.port),
        "MAIL_SMTP_SECURITY": "none",
        "MAIL_FROM": f"Our Shop <{DESK}>",
        "SURVEY_LINK_BASE_URL": "https://cc.example.com",
    }
    for name, value in {**options, "SURVEY_LINK_SECRET": LINK_SECRET}.items():
        monkeypatch.setenv(name, value)  # the event handler reads the environment, as the worker does
    return options


@pytest.fixture
def mail_app(database_factory, broker_url, mail_options):
    app, _ = make_surveys_app(database_factory, broker_url, **mail_options)
    return app


def customer(database, *, email="ada@example.org", consent=True, **extra) -> str:
    customer_id = str(uuid.uuid4())
    data = {
        "customer_id": customer_id,
        "name": "Ada Lovelace",
        "phone": None,
        "phones": [],
        "email": email,
        "time_zone": "Europe/Berlin",
        "do_not_call": False,
        "marketing_consent": consent,
        "segment": "C",
        **extra,
    }
    deliver(database, "customer.created", data)
    return customer_id


def send(app) -> int:
    return mail.send_queued(app.extensions["database"], app.extensions["settings"])


def link_in(message) -> str:
    return re.search(r"https://cc\.example\.com/links/([\w.\-]+)", message.get_body(("plain",)).get_content()).group(1)


def test_an_invitation_arrives_by_mail_and_its_link_opens_the_survey_once(mail_app, smtp_server):
    database = mail_app.extensions["database"]
    customer_id = customer(database)
    desk = signed_client(mail_app)
    invited = desk.post("/links/email", json={"customer_id": customer_id, "language": "de", "agent_id": "agent-3"})
    assert invited.status_code == 201, invited.json
    assert invited.json["status"] == "queued" and invited.json["language"] == "de"
    assert send(mail_app) == 1 and send(mail_app) == 0

    [received] = smtp_server.received
    message = received["message"]
    assert received["to"] == ["ada@example.org"]
    assert message["Subject"] == "Wie waren wir? Eine Frage"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Unsubscribe"].startswith("<https://cc.example.com/links/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Wie gut hat das Produkt Ihre Erwartungen erfüllt?" in message.get_body(("html",)).get_content()

    token = link_in(message)
    survey = desk.get(f"/links/{token}")
    assert survey.status_code == 200 and survey.json["language"] == "de"
    assert desk.post(f"/links/{token}", json={"answers": ANSWERS}).status_code == 201
    assert desk.post(f"/links/{token}", json={"answers": ANSWERS}).status_code == 409


def test_no_invitation_without_an_address_without_consent_or_after_unsubscribing(mail_app, smtp_server):
    database = mail_app.extensions["database"]
    desk = signed_client(mail_app)
    no_address = desk.post("/links/email", json={"customer_id": customer(database, email=None)})
    assert no_address.status_code == 409 and "no e-mail address" in no_address.json["detail"]
    no_consent = desk.post("/links/email", json={"customer_id": customer(database, consent=False)})
    assert no_consent.status_code == 409 and "consent" in no_consent.json["detail"]

    customer_id = customer(database)
    assert desk.post("/links/email", json={"customer_id": customer_id}).status_code == 201
    send(mail_app)
    unsubscribe = smtp_server.messages()[0]["List-Unsubscribe"].strip("<>").removeprefix("https://cc.example.com")
    anonymous = mail_app.test_client()
    assert anonymous.get(unsubscribe).status_code == 200  # a page that asks; a mail scanner's GET changes nothing
    with database.sessions() as session:
        assert session.get(SurveyMailOptOut, customer_id) is None
    assert anonymous.post(unsubscribe, data="List-Unsubscribe=One-Click").status_code == 200
    refused = desk.post("/links/email", json={"customer_id": customer_id})
    assert refused.status_code == 409 and "unsubscribed" in refused.json["detail"]
    assert anonymous.post("/links/unsubscribe/forged-token").status_code == 404


def test_a_follow_up_entry_that_ends_without_a_survey_sends_its_link_once(mail_app, smtp_server):
    database = mail_app.extensions["database"]
    customer_id = customer(database)
    ended = contact("no_answer", attempt=3)
    ended.update(customer_id=customer_id, entry_state="exhausted")
    deliver(database, "callentry.completed", ended)
    deliver(database, "callentry.completed", {**ended, "attempt": 4})  # the entry's outcome again: still one mail
    still_going = contact("no_answer")
    still_going["customer_id"] = customer_id  # entry_state pending: more calls to come, no mail yet
    deliver(database, "callentry.completed", still_going)
    wrong = contact("wrong_number")
    wrong.update(customer_id=customer_id, entry_state="completed")
    deliver(database, "callentry.completed", wrong)

    with database.sessions() as session:
        rows = list(session.scalars(select(SurveyMail)))
    assert [(row.entry_id, row.customer_id) for row in rows] == [(ended["entry_id"], customer_id)]
    assert send(mail_app) == 1
    assert smtp_server.messages()[0]["Subject"] == "How did we do? One question"


def test_a_follow_up_entry_surveyed_on_the_call_gets_no_mail(mail_app):
    database = mail_app.extensions["database"]
    customer_id = customer(database)
    desk = signed_client(mail_app)
    entry = contact("reached")
    entry["customer_id"] = customer_id
    response = {"customer_id": customer_id, "channel": "agent", "agent_id": "agent-1", "entry_id": entry["entry_id"]}
    assert desk.post("/responses", json={**response, "answers": ANSWERS}).status_code == 201
    deliver(database, "callentry.completed", entry)
    with database.sessions() as session:
        assert list(session.scalars(select(SurveyMail))) == []


def test_a_link_by_email_campaign_mails_the_link_after_a_reached_call_even_with_the_fallback_off(
    mail_app, smtp_server, monkeypatch
):
    monkeypatch.setenv("SURVEY_MAIL_AFTER_CALLS", "0")  # the on-call campaigns' fallback is off
    database = mail_app.extensions["database"]
    by_mail, on_call = customer(database), customer(database)
    chosen = {**contact("reached"), "customer_id": by_mail, "survey_delivery": "link_by_email"}
    deliver(database, "callentry.completed", chosen)
    ended = {**contact("no_answer", attempt=3), "customer_id": on_call, "entry_state": "exhausted"}
    deliver(database, "callentry.completed", {**ended, "survey_delivery": "on_call"})
    deliver(database, "callentry.completed", {**contact("reached"), "customer_id": on_call})  # an older event

    with database.sessions() as session:
        rows = list(session.scalars(select(SurveyMail)))
    assert [(row.entry_id, row.customer_id) for row in rows] == [(chosen["entry_id"], by_mail)]
    assert send(mail_app) == 1
    [message] = smtp_server.messages()
    assert message["To"].endswith("<ada@example.org>") and link_in(message)


def test_the_words_around_the_link_are_in_every_language_of_the_default_template():
    assert {"en", "de", "fr", "zh-Hans", "zh-Hant", "tl"} <= set(mail.WORDS)
    for language, words in mail.WORDS.items():
        assert set(words) == set(mail.WORDS["en"]), language
    assert mail.words_for("zh-Hant")["answer"] != mail.WORDS["en"]["answer"]
    assert mail.words_for("de-AT") is mail.WORDS["de"] and mail.words_for("xx") is mail.WORDS["en"]
    assert mail.words_for("zh-TW") is mail.WORDS["zh-Hant"] and mail.words_for("fil") is mail.WORDS["tl"]


@pytest.mark.parametrize(
    ("customer_language", "asked", "expected"),
    [
        ("de", None, "de"),
        ("de-AT", "en", "de"),
        ("fr", "de", "de"),
        (None, None, "en"),
        ("fr", "fr", "en"),
        ("zh-TW", "en", "zh-Hant"),
    ],
)
def test_the_mail_is_in_the_customers_language_where_the_template_has_it(customer_language, asked, expected):
    assert mail.choose_language(customer_language, asked, ["en", "de", "zh-Hant"]) == expected


def test_erasing_a_customers_survey_mail_removes_the_mails_and_the_opt_out(mail_app):
    database = mail_app.extensions["database"]
    customer_id = customer(database)
    desk = signed_client(mail_app)
    desk.post("/links/email", json={"customer_id": customer_id})
    from shared.unit_of_work import UnitOfWork

    with UnitOfWork(database, source="surveys") as uow:
        mail.opt_out(uow, customer_id, mail.utcnow())
    with UnitOfWork(database, source="surveys") as uow:
        assert mail.erase_customer_mail(uow, customer_id) == 1
        uow.commit()
    with database.sessions() as session:
        assert list(session.scalars(select(SurveyMail))) == [] and session.get(SurveyMailOptOut, customer_id) is None
