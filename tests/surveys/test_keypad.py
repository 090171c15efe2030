"""The keypad survey over the phone (Twilio <Gather>), with requests signed as Twilio signs them."""

import uuid
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlencode, urlsplit

from sqlalchemy import select
from twilio.request_validator import RequestValidator

from services.surveys.models import SurveyCount, SurveyResponse
from tests.surveys.conftest import TWILIO_TOKEN
from tests.surveys.test_api import published

START = "/webhooks/twilio/survey"


def twilio_post(client, path, params, token=TWILIO_TOKEN):
    signature = RequestValidator(token).compute_signature(f"http://localhost{path}", params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


class Call:
    """One phone call through the survey: it follows the TwiML like Twilio would."""

    def __init__(self, client, customer_id=None, **query):
        self.client = client
        self.sid = f"CA{uuid.uuid4().hex}"
        self.customer_id = customer_id or str(uuid.uuid4())
        self.query = {"customer_id": self.customer_id, **query}
        self.twiml = None

    def start(self):
        return self._follow(twilio_post(self.client, f"{START}?{urlencode(self.query)}", {"CallSid": self.sid}))

    def press(self, digits):
        """Type digits into the current <Gather> (None: the gather timed out and Twilio follows <Redirect>)."""
        gather = self.twiml.find("Gather")
        params = {"CallSid": self.sid} if digits is None else {"CallSid": self.sid, "Digits": digits}
        target = gather.get("action") if digits is not None else self.twiml.find("Redirect").text
        return self._follow(twilio_post(self.client, target, params))

    def hang_up(self):
        return twilio_post(self.client, f"{START}/status", {"CallSid": self.sid, "CallStatus": "completed"})

    def _follow(self, response):
        assert response.status_code == 200, response.data
        assert response.mimetype == "application/xml"
        self.twiml = ET.fromstring(response.data)
        return self.twiml

    @property
    def asking(self):
        gather = self.twiml.find("Gather")
        if gather is None:
            return None
        query = parse_qs(urlsplit(gather.get("action")).query)
        return query["question"][0], int(query["attempt"][0])

    @property
    def said(self):
        return " ".join(say.text for say in self.twiml.iter("Say"))


def stored(database, call):
    with database.engine.connect() as connection:
        return connection.execute(select(SurveyResponse).where(SurveyResponse.call_id == call.sid)).mappings().one()


def test_a_keypad_survey_asks_each_question_and_completes(client, database):
    call = Call(client, language="de", agent_id="agent-9")
    twiml = call.start()
    gather = twiml.find("Gather")
    assert (gather.get("input"), gather.get("finishOnKey"), gather.get("numDigits")) == ("dtmf", "#", "2")
    assert gather.find("Say").get("language") == "de-DE"
    assert "Wie gut hat das Produkt Ihre Erwartungen erfüllt?" in call.said
    asked = []
    for digits in ("9", "10", "8", "07", "3"):
        asked.append(call.asking[0])
        call.press(digits)
    assert asked == ["product", "service", "purchase", "recommend_product", "recommend_store"]
    assert call.twiml.find("Hangup") is not None and "Vielen Dank" in call.said
    response = stored(database, call)
    assert response["status"] == "complete" and response["channel"] == "keypad"
    assert response["answers"] == {
        "product": 9,
        "service": 10,
        "purchase": 8,
        "recommend_product": 7,
        "recommend_store": 3,
    }
    (event,) = published(database, "survey.completed")
    assert (event.data["call_id"], event.data["agent_id"], event.data["channel"]) == (call.sid, "agent-9", "keypad")
    (low,) = published(database, "survey.low_score")
    assert low.data["low_questions"] == ["recommend_store"]


def test_an_invalid_answer_is_reprompted_twice_then_the_survey_ends_partial(client, database):
    call = Call(client)
    call.start()
    call.press("8")
    assert call.asking == ("service", 0)
    call.press("0")
    assert call.asking == ("service", 1) and "not a number from 1 to 10" in call.said
    call.press(None)  # no input before the timeout
    assert call.asking == ("service", 2)
    call.press("11")  # the third invalid answer to a required question: goodbye
    assert call.asking is None and call.twiml.find("Hangup") is not None
    response = stored(database, call)
    assert response["status"] == "partial" and response["answers"] == {"product": 8}
    assert published(database) == []


def test_a_hang_up_midway_leaves_a_partial_response_counted_apart(client, database):
    call = Call(client)
    call.start()
    call.press("9")
    call.press("4")
    assert stored(database, call)["status"] == "in_progress"
    assert call.hang_up().status_code == 204
    response = stored(database, call)
    assert response["status"] == "partial" and response["answers"] == {"product": 9, "service": 4}
    with database.engine.connect() as connection:
        partial = connection.execute(
            select(SurveyCount.count).where(SurveyCount.dimension == "all", SurveyCount.measure == "partial")
        ).scalar_one()
    assert partial == 1
    assert published(database) == []  # a partial response neither completes nor opens a case
    call.press("9")  # a late answer after the hang-up changes nothing
    assert call.twiml.find("Hangup") is not None
    assert stored(database, call)["answers"] == {"product": 9, "service": 4}
    assert call.hang_up().status_code == 204  # a repeated callback counts nothing twice
    metrics = client.get("/survey-metrics?min_n=1").json["groups"][0]
    assert metrics["responses"] == {"completed": 0, "partial": 1}


def test_a_retried_start_webhook_resumes_the_same_survey(client, database):
    call = Call(client)
    call.start()
    call.press("7")
    call.start()  # Twilio retried the start
    assert call.asking == ("service", 0)
    with database.engine.connect() as connection:
        assert len(connection.execute(select(SurveyResponse)).all()) == 1


def test_unsigned_or_wrongly_signed_webhooks_are_refused(client, database):
    call = Call(client)
    path = f"{START}?customer_id={call.customer_id}"
    assert client.post(path, data={"CallSid": call.sid}).status_code == 403
    assert twilio_post(client, path, {"CallSid": call.sid}, token="not-the-token").status_code == 403
    with database.engine.connect() as connection:
        assert connection.execute(select(SurveyResponse)).all() == []


def test_a_start_without_a_customer_is_a_422(client):
    response = twilio_post(client, START, {"CallSid": "CA1"})
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "customer_id"


def test_an_optional_question_is_skipped_after_the_last_reprompt(client, database):
    template = client.post(
        "/templates",
        json={
            "name": "Two questions",
            "questions": [
                {"key": "service", "texts": {"en": "Service?"}, "required": False},
                {"key": "recommend_store", "kind": "recommend", "texts": {"en": "Recommend us?"}},
            ],
        },
    ).json
    call = Call(client, template_id=template["id"])
    call.start()
    for digits in ("0", "99", None):  # three invalid answers to the optional question
        call.press(digits)
    assert call.asking == ("recommend_store", 0)
    call.press("10")
    response = stored(database, call)
    assert response["status"] == "complete" and response["answers"] == {"recommend_store": 10}
    (event,) = published(database, "survey.completed")
    assert event.data["template_id"] == template["id"]
