"""The demo world, drawn from a seed number: who works here, who buys, who calls, what happened.

Pure data, no I/O: every service's ``seed.py`` writes its own part of one ``DemoWorld`` into its
own database, so the ids the services share (customers, purchases, calls, tickets, survey
responses, call-list entries) agree across them. The same seed number and the same ``now``
give the same world, ids included (they are uuid5s of the seed number and a name).

The month is played, not sprinkled: inbound calls arrive by hour (busier on weekdays and at
mid-morning and mid-afternoon), wait for the agent on shift who is free first, and hang up
when their patience runs out first; answered calls end in a wrap-up reason, some open a
ticket; follow-up calls come after purchases; surveys follow calls and purchases, and a low
score opens a service-recovery ticket. So a day's report reads like a day.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from services.tickets.domain import recovery_ticket_text
from shared.phones import NotAPhoneNumber, time_zone_of, to_e164

DEFAULT_SEED = 2026
DEFAULT_DAYS = 30
DEFAULT_CUSTOMERS = 300
NAMESPACE = uuid.UUID("0b5c8e1e-7d9a-5c43-9a57-2c0de5eed000")
CENTER_NUMBER = "+12025550100"  # the number customers dial (a fictional 555-01xx line)
QUEUE = "default"
SURVEY_TEMPLATE_ID = "6f1c3a52-3d0e-5b8a-9c41-2f6d7e8a9b10"  # the surveys migration's follow-up survey
SURVEY_QUESTIONS = (
    ("product", "rating"),
    ("service", "rating"),
    ("purchase", "rating"),
    ("recommend_product", "recommend"),
    ("recommend_store", "recommend"),
)
POST_PURCHASE_DELAY_DAYS = 3


def demo_id(seed: int, kind: str, key: object) -> str:
    """A stable id: the same seed, kind and key give the same uuid in every service and run."""
    return str(uuid.uuid5(NAMESPACE, f"{seed}:{kind}:{key}"))


# --- who -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoUser:
    id: str
    name: str
    role: str  # admin, supervisor, agent
    skills: tuple[str, ...] = ()


STAFF = (
    DemoUser("sup-1", "Maria Keller", "supervisor"),
    DemoUser("sup-2", "Daniel Brooks", "supervisor"),
    DemoUser("agent-1", "Aisha Khan", "agent", ("en", "refunds")),
    DemoUser("agent-2", "Lukas Weber", "agent", ("en", "de")),
    DemoUser("agent-3", "Sofia Martínez", "agent", ("en", "es")),
    DemoUser("agent-4", "Tom Fletcher", "agent", ("en", "technical")),
    DemoUser("agent-5", "Chloé Laurent", "agent", ("en", "fr")),
    DemoUser("agent-6", "James O'Connor", "agent", ("en", "refunds")),
)
AGENTS = tuple(user for user in STAFF if user.role == "agent")


@dataclass(frozen=True)
class Country:
    code: str
    currency: str
    share: float
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    number_patterns: tuple[str, ...]  # "+1202555{0:04d}": filled with 0..9999, kept when valid
    email_domain: str


COUNTRIES = (
    Country(
        "US",
        "USD",
        0.45,
        tuple(
            (
                "James Mary Robert Patricia Michael Jennifer David Linda William Elizabeth Richard Barbara Joseph "
                "Susan Thomas Jessica Christopher Sarah Daniel Karen Matthew Nancy Anthony Lisa Mark Betty Emily "
                "Kevin Ashley Brian"
            ).split()
        ),
        tuple(
            (
                "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Wilson "
                "Anderson Thomas Taylor Moore Jackson Martin Lee Thompson White Harris Clark Lewis Robinson "
                "Walker Young Allen King"
            ).split()
        ),
        ("+1202555{0:04d}", "+1312555{0:04d}", "+1415555{0:04d}", "+1617555{0:04d}", "+1206555{0:04d}"),
        "example.com",
    ),
    Country(
        "GB",
        "GBP",
        0.2,
        tuple(
            (
                "Oliver Amelia George Isla Harry Ava Jack Mia Charlie Ivy Freddie Lily Alfie Grace Archie "
                "Florence Henry Poppy Theo Evie"
            ).split()
        ),
        tuple(
            (
                "Taylor Davies Evans Thomas Roberts Walker Wright Hughes Edwards Green Hall Wood Harris Lewis "
                "Clarke Patel Jackson Turner Hill Cooper"
            ).split()
        ),
        ("+4420794{0:05d}", "+4411349{0:05d}"),
        "example.co.uk",
    ),
    Country(
        "DE",
        "EUR",
        0.2,
        tuple(
            (
                "Lena Jonas Mia Leon Hannah Finn Emma Paul Sophie Felix Marie Lukas Anna Maximilian Laura Elias "
                "Lea Noah Clara Ben"
            ).split()
        ),
        tuple(
            (
                "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch Richter Klein "
                "Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger"
            ).split()
        ),
        ("+4930231{0:05d}", "+4940669{0:05d}", "+4989999{0:05d}"),
        "example.de",
    ),
    Country(
        "FR",
        "EUR",
        0.15,
        tuple(
            (
                "Camille Louis Léa Gabriel Manon Jules Chloé Hugo Inès Arthur Jade Raphaël Louise Adam Alice "
                "Lucas Lina Nathan Zoé Théo"
            ).split()
        ),
        tuple(
            (
                "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent Lefebvre "
                "Michel Garcia David Bertrand Roux Vincent Fournier"
            ).split()
        ),
        ("+331990{0:05d}", "+336123{0:05d}"),
        "example.fr",
    ),
)

PRODUCTS = (  # sku, product, price in the customer's currency
    ("KTL-200", "Kettle Pro 2000", Decimal("79.00")),
    ("CFM-550", "Espresso Machine Barista 550", Decimal("649.00")),
    ("VAC-X9", "Cordless Vacuum X9", Decimal("399.00")),
    ("BLN-300", "High-Speed Blender 300", Decimal("149.00")),
    ("TST-4", "Four-Slice Toaster", Decimal("59.00")),
    ("AIR-FR5", "Air Fryer 5 L", Decimal("129.00")),
    ("MIX-KS", "Stand Mixer Classic", Decimal("499.00")),
    ("FLT-JUG", "Water Filter Jug", Decimal("29.00")),
    ("RBV-S7", "Robot Vacuum S7", Decimal("899.00")),
    ("IRN-ST", "Steam Iron Plus", Decimal("69.00")),
    ("HUM-UL", "Ultrasonic Humidifier", Decimal("89.00")),
    ("SPK-WTY", "Extended Warranty (2 years)", Decimal("49.00")),
)
PRODUCT_WEIGHTS = (14, 6, 8, 10, 12, 12, 5, 16, 3, 10, 6, 8)


@dataclass
class DemoCustomer:
    id: str
    name: str
    phones: list[str]
    email: str | None
    time_zone: str | None
    country: str
    currency: str
    do_not_call: bool
    marketing_consent: bool
    created_at: datetime
    segment: str = "C"

    @property
    def phone(self) -> str | None:
        return self.phones[0] if self.phones else None


@dataclass
class DemoPurchase:
    id: str
    customer_id: str
    sku: str
    product: str
    amount: Decimal
    currency: str
    purchased_at: datetime
    source: str
    order_ref: str


# --- what happened ---------------------------------------------------------------------------


@dataclass
class DemoCall:
    call_id: str
    from_number: str
    customer_id: str | None
    enqueued_at: datetime
    result: str  # answered, abandoned, short_abandon, timeout
    wait_seconds: float
    agent_id: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    talk_seconds: float | None = None
    wrap_up_seconds: float | None = None
    wrapped_up_at: datetime | None = None
    reason: str | None = None
    notes: str | None = None
    ticket_id: str | None = None

    @property
    def state(self) -> str:
        return "completed" if self.result == "answered" else "abandoned"


@dataclass
class DemoComment:
    id: str
    author_id: str | None
    body: str
    public: bool
    created_at: datetime


@dataclass
class DemoTicket:
    id: str
    number: int
    customer_id: str | None
    subject: str
    description: str
    category: str
    priority: str
    channel: str
    created_at: datetime
    assignee_id: str | None
    created_by: str | None
    first_responded_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    pending_since: datetime | None = None
    call_id: str | None = None
    survey_response_id: str | None = None
    tags: list[str] = field(default_factory=list)
    comments: list[DemoComment] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.closed_at:
            return "closed"
        if self.resolved_at:
            return "resolved"
        if self.pending_since:
            return "pending"
        return "open" if self.first_responded_at else "new"


@dataclass
class DemoCampaign:
    id: str
    name: str
    purpose: str
    delay_days: int
    script: str
    talking_point: str
    contact_frequency_days: int = 30  # call routing's default
    survey_delivery: str = "on_call"  # or link_by_email (docs/callrouting.md)


@dataclass
class DemoAttempt:
    id: str
    number: int
    agent_id: str
    outcome: str
    offer_accepted: bool | None
    notes: str | None
    started_at: datetime
    ended_at: datetime


@dataclass
class DemoEntry:
    id: str
    campaign_id: str
    customer_id: str
    purchase_id: str
    time_zone: str
    created_at: datetime
    due_at: datetime  # when it is due next (pending), or was last due
    state: str = "pending"  # pending, completed, exhausted
    attempts: list[DemoAttempt] = field(default_factory=list)
    closed_at: datetime | None = None

    @property
    def last_outcome(self) -> str | None:
        return self.attempts[-1].outcome if self.attempts else None

    @property
    def offer_accepted(self) -> bool | None:
        answers = [attempt.offer_accepted for attempt in self.attempts if attempt.offer_accepted is not None]
        return answers[-1] if answers else None


@dataclass
class DemoResponse:
    id: str
    customer_id: str
    channel: str  # agent, keypad, link
    answers: dict[str, int]
    started_at: datetime
    completed_at: datetime | None  # None: partial (the caller hung up midway)
    agent_id: str | None = None
    call_id: str | None = None
    entry_id: str | None = None
    campaign_id: str | None = None
    purchase_id: str | None = None
    product: str | None = None
    comment: str | None = None
    language: str = "en"

    @property
    def status(self) -> str:
        return "complete" if self.completed_at else "partial"

    @property
    def day(self) -> str:
        return (self.completed_at or self.started_at).date().isoformat()


@dataclass
class DemoWorld:
    seed: int
    now: datetime
    first_day: date
    users: tuple[DemoUser, ...]
    customers: list[DemoCustomer]
    purchases: list[DemoPurchase]
    calls: list[DemoCall]
    tickets: list[DemoTicket]
    campaigns: list[DemoCampaign]
    entries: list[DemoEntry]
    responses: list[DemoResponse]

    @property
    def marker(self) -> str:
        """The id of the world's first customer: present in a database when this seed was written there."""
        return self.customers[0].id


# --- drawing it --------------------------------------------------------------------------------

CALL_REASON_WEIGHTS = {
    "question": 30,
    "technical_support": 18,
    "complaint": 11,
    "quality_issue": 9,
    "replacement": 9,
    "refund": 8,
    "registration": 8,
    "other": 7,
}
# Reasons that usually leave work behind: a ticket opened during the call.
TICKET_FROM_CALL = {
    "complaint": 0.3,
    "quality_issue": 0.3,
    "replacement": 0.5,
    "refund": 0.5,
    "technical_support": 0.15,
}
WRITTEN_TICKET_CATEGORIES = {
    "question": 20,
    "technical_support": 16,
    "complaint": 12,
    "quality_issue": 10,
    "replacement": 10,
    "refund": 10,
    "registration": 8,
    "suggestion": 8,
    "other": 6,
}
CATEGORY_PRIORITY = {
    "complaint": ("normal", "high"),
    "quality_issue": ("normal", "high"),
    "replacement": ("normal", "high"),
    "refund": ("normal", "high"),
    "technical_support": ("normal", "low", "high"),
    "question": ("low", "normal"),
    "registration": ("low", "normal"),
    "suggestion": ("low",),
    "other": ("low", "normal"),
}
# Median minutes to the first response and to resolution, per priority: close enough to the
# default SLA policies (urgent 1 h / 4 h, high 4 h / 24 h, normal 8 h / 24 h, low 24 h / 40 h)
# that some tickets miss them.
RESPONSE_MEDIAN_MINUTES = {"urgent": 25, "high": 90, "normal": 180, "low": 480}
RESOLUTION_MEDIAN_MINUTES = {"urgent": 150, "high": 900, "normal": 960, "low": 1500}

SUBJECTS = {
    "complaint": (
        "Delivery arrived two days late",
        "Rude courier on delivery",
        "Charged twice for one order",
        "Order arrived incomplete",
        "Nobody called me back as promised",
    ),
    "quality_issue": (
        "{product} stopped working after a week",
        "{product} makes a loud noise",
        "Scratches on my new {product}",
        "{product} leaks water",
        "Lid of the {product} cracked",
    ),
    "replacement": (
        "Replacement for a faulty {product}",
        "Wrong colour delivered: {product}",
        "Exchange {product} for a larger model",
        "Broken on arrival: {product}",
    ),
    "refund": (
        "Refund for returned {product}",
        "Refund not received yet",
        "Cancel order and refund",
        "Partial refund for the missing accessory",
    ),
    "question": (
        "Is the {product} dishwasher safe?",
        "Where is my order?",
        "Opening hours over the holidays",
        "Can I pick up in store?",
        "Which filter fits my {product}?",
    ),
    "technical_support": (
        "{product} will not connect to Wi-Fi",
        "Error E4 on the {product}",
        "How do I descale the {product}?",
        "App does not find my {product}",
    ),
    "registration": (
        "Register my {product} for the warranty",
        "Cannot create an account",
        "Change the e-mail address on my account",
    ),
    "suggestion": (
        "Please offer gift wrapping",
        "Idea: a reminder for filter changes",
        "More colours for the {product}",
    ),
    "other": ("Feedback on the new store", "Invoice with my company name", "Question about a voucher"),
}
REPLIES = {
    "first": (
        "Thank you for getting in touch. I am looking into this for you now.",
        "Sorry to hear about this. Could you send us a photo of the problem?",
        "Thanks for your message. I have checked your order and will update you shortly.",
        "I understand how frustrating this is. Let me sort it out for you.",
    ),
    "resolved": (
        "We have sent the replacement today; you will get the tracking number by e-mail.",
        "Your refund has been issued and should reach your account within 3-5 working days.",
        "Glad we could sort this out. Let us know if anything else comes up.",
        "The steps in the attached guide fixed it on our side; please try them and tell us.",
        "I have updated your account as asked.",
    ),
    "note": (
        "Customer called twice about this already.",
        "Checked with the warehouse: stock is available.",
        "Escalated to the product team.",
        "Goodwill voucher offered.",
        "Waiting for the courier's report.",
    ),
    "customer": (
        "Thanks, here are the photos you asked for.",
        "Any news on this?",
        "The problem is still there after trying your steps.",
        "Thank you, that worked!",
    ),
}
CALL_NOTES = (
    "Explained the return process.",
    "Walked through the reset steps.",
    "Order status given.",
    "Customer will send photos.",
    "Offered a replacement.",
    "Refund explained.",
    None,
    None,
    None,
)
SURVEY_COMMENTS_HAPPY = (
    "Very helpful agent, thank you!",
    "Quick and friendly.",
    "Great product, fast delivery.",
    "Solved my problem in one call.",
    None,
    None,
    None,
)
SURVEY_COMMENTS_UNHAPPY = (
    "I waited far too long on the phone.",
    "The product broke and nobody helps.",
    "Still no refund after two weeks.",
    "Agent did not understand my problem.",
    "Disappointed with the quality.",
    None,
)


def _lognormal(rng: random.Random, median: float, sigma: float = 0.7) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _at_day_seconds(day: date, seconds: float) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)


class _World:
    """Builds a DemoWorld step by step; every draw comes from one Random seeded with the seed number."""

    def __init__(self, seed: int, now: datetime, days: int, customers: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = now.astimezone(UTC).replace(microsecond=0)
        self.today = self.now.date()
        self.first_day = self.today - timedelta(days=days)
        self.customer_count = customers
        self.customers: list[DemoCustomer] = []
        self.purchases: list[DemoPurchase] = []
        self.calls: list[DemoCall] = []
        self.tickets: list[DemoTicket] = []
        self.entries: list[DemoEntry] = []
        self.responses: list[DemoResponse] = []
        self.purchases_of: dict[str, list[DemoPurchase]] = {}
        self.by_id: dict[str, DemoCustomer] = {}
        self.campaign = DemoCampaign(
            demo_id(seed, "campaign", "post_purchase"),
            "Post-purchase follow-up",
            "post_purchase",
            POST_PURCHASE_DELAY_DAYS,
            "Greet the customer by name, ask how the product is doing, offer the extended warranty.",
            "Two years of extended warranty at 20% off this week.",
        )
        # Where a resolved service-recovery ticket's re-survey goes (followup.requested): a call to
        # check all is well, its survey link by e-mail afterwards. No entries yet: make run's loop adds them.
        self.resurvey_campaign = DemoCampaign(
            demo_id(seed, "campaign", "resurvey"),
            "Re-survey after service recovery",
            "resurvey",
            0,
            "Ask whether the problem is solved for good; the survey link follows by e-mail.",
            "",
            contact_frequency_days=0,
            survey_delivery="link_by_email",
        )

    def id(self, kind: str, key: object) -> str:
        return demo_id(self.seed, kind, key)

    # --- customers and purchases ---

    def draw_customers(self) -> None:
        rng = self.rng
        used_numbers: set[str] = {CENTER_NUMBER}
        used_emails: set[str] = set()
        countries = list(COUNTRIES)
        for index in range(self.customer_count):
            country = rng.choices(countries, weights=[c.share for c in countries])[0]
            first, last = rng.choice(country.first_names), rng.choice(country.last_names)
            phones = [self._new_number(country, used_numbers) for _ in range(2 if rng.random() < 0.12 else 1)]
            if rng.random() < 0.03:
                phones = []  # a customer known by e-mail only
            local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
            email = None if rng.random() < 0.08 else f"{_ascii(local)}@{country.email_domain}"
            if email in used_emails:
                email = f"{_ascii(local)}{index}@{country.email_domain}"
            if email:
                used_emails.add(email)
            created = self.now - timedelta(days=rng.uniform(35, 720), seconds=rng.uniform(0, 86400))
            self.customers.append(
                DemoCustomer(
                    id=self.id("customer", index),
                    name=f"{first} {last}",
                    phones=phones,
                    email=email,
                    time_zone=time_zone_of(phones[0]) if phones else None,
                    country=country.code,
                    currency=country.currency,
                    do_not_call=rng.random() < 0.04,
                    marketing_consent=rng.random() < 0.55,
                    created_at=created.replace(microsecond=0),
                )
            )
            self.by_id[self.customers[-1].id] = self.customers[-1]

    def _new_number(self, country: Country, used: set[str]) -> str:
        while True:
            pattern = self.rng.choice(country.number_patterns)
            width = 4 if "{0:04d}" in pattern else 5
            candidate = pattern.format(self.rng.randrange(100 if width == 4 else 0, 200 if width == 4 else 1000))
            if candidate in used:
                continue
            try:
                number = to_e164(candidate)
            except NotAPhoneNumber:
                continue
            used.add(number)
            return number

    def draw_purchases(self) -> None:
        rng = self.rng
        skus = list(range(len(PRODUCTS)))
        order = 100000
        for customer in self.customers:
            count = rng.choices((0, 1, 2, 3, 4, 6), weights=(10, 35, 25, 15, 10, 5))[0]
            for _ in range(count):
                sku, product, price = PRODUCTS[rng.choices(skus, weights=PRODUCT_WEIGHTS)[0]]
                quantity = 1 if rng.random() < 0.85 else 2
                # Most purchases in the past year, a good share in the last weeks (follow-ups, surveys).
                age_days = rng.uniform(0.2, 40) if rng.random() < 0.35 else rng.uniform(40, 420)
                purchased = self.now - timedelta(days=age_days)
                if purchased < customer.created_at:
                    purchased = customer.created_at + timedelta(hours=rng.uniform(1, 48))
                if purchased >= self.now:
                    continue
                order += 1
                purchase = DemoPurchase(
                    id=self.id("purchase", order),
                    customer_id=customer.id,
                    sku=sku,
                    product=product,
                    amount=price * quantity,
                    currency=customer.currency,
                    purchased_at=purchased.replace(microsecond=0),
                    source=rng.choice(("webshop", "webshop", "store")),
                    order_ref=f"ORD-{order}",
                )
                self.purchases.append(purchase)
                self.purchases_of.setdefault(customer.id, []).append(purchase)
        self.purchases.sort(key=lambda purchase: purchase.purchased_at)
        for purchases in self.purchases_of.values():
            purchases.sort(key=lambda purchase: purchase.purchased_at)
        for customer in self.customers:
            # The tickets service's rule, with its default thresholds (A from 1,000, B from 250 in a year).
            year = sum(
                (
                    p.amount
                    for p in self.purchases_of.get(customer.id, [])
                    if p.purchased_at >= self.now - timedelta(365)
                ),
                Decimal(0),
            )
            customer.segment = "A" if year >= 1000 else "B" if year >= 250 else "C"

    def product_of(self, customer: DemoCustomer | None, before: datetime) -> DemoPurchase | None:
        if customer is None:
            return None
        owned = [p for p in self.purchases_of.get(customer.id, []) if p.purchased_at < before]
        return owned[-1] if owned else None

    # --- inbound calls ---

    def draw_calls(self) -> None:
        rng = self.rng
        callers = [customer for customer in self.customers if customer.phones]
        strangers: set[str] = set()
        used = {number for customer in self.customers for number in customer.phones} | {CENTER_NUMBER}
        # Agents' weekly rota: each works five days of seven; a few work faster (the top agent).
        rota = {agent.id: set(rng.sample(range(7), 5)) for agent in AGENTS}
        speed = {agent.id: rng.uniform(0.8, 1.25) for agent in AGENTS}
        sequence = 0
        day = self.first_day
        while day <= self.today:
            weekend = day.weekday() >= 5
            # Three agents take the inbound line on a weekday, two at weekends (the others make
            # the follow-up calls): enough that callers wait at the peaks, and some give up.
            on_shift = [agent.id for agent in AGENTS if day.weekday() in rota[agent.id]][: 2 if weekend else 3]
            on_shift = on_shift or [AGENTS[0].id]
            free_at = {agent_id: _at_day_seconds(day, 7 * 3600) for agent_id in on_shift}
            arrivals = []
            for hour in range(7, 20):
                # Per hour: a morning and an afternoon peak, fewer calls at weekends.
                rate = 4 + 9 * math.exp(-((hour - 10.5) ** 2) / 3) + 7 * math.exp(-((hour - 15) ** 2) / 3)
                rate *= 0.8 if weekend else 1.0
                for _ in range(_poisson(rng, rate)):
                    arrivals.append(_at_day_seconds(day, hour * 3600 + rng.uniform(0, 3600)))
            arrivals.sort()
            for arrived in arrivals:
                if arrived >= self.now - timedelta(minutes=30):
                    break  # calls still going on now belong to the live system, not to the history
                sequence += 1
                known = rng.random() < 0.82
                customer = rng.choice(callers) if known else None
                if customer:
                    number = customer.phones[0]
                else:
                    number = self._stranger(strangers, used)
                call = DemoCall(
                    call_id=f"CA{uuid.UUID(self.id('call', sequence)).hex}",
                    from_number=number,
                    customer_id=customer.id if customer else None,
                    enqueued_at=arrived.replace(microsecond=0),
                    result="answered",
                    wait_seconds=0.0,
                )
                self._route(call, free_at, speed, customer)
                self.calls.append(call)
            day += timedelta(days=1)

    def _stranger(self, strangers: set[str], used: set[str]) -> str:
        if strangers and self.rng.random() < 0.3:
            return self.rng.choice(sorted(strangers))  # someone unknown calling again
        while True:
            number = f"+1206555{self.rng.randrange(100, 200):04d}"
            if number not in used:
                strangers.add(number)
                return number

    def _route(self, call: DemoCall, free_at: dict[str, datetime], speed: dict, customer) -> None:
        rng = self.rng
        patience = rng.expovariate(1 / 75)  # seconds a caller is willing to wait
        agent_id = min(free_at, key=lambda a: (free_at[a], a)) if free_at else None
        wait = max(0.0, (free_at[agent_id] - call.enqueued_at).total_seconds()) if agent_id else 600.0
        wait += rng.uniform(2, 9)  # the ring before the agent picks up
        if wait > min(patience, 600):
            left_after = min(patience, 600.0)
            call.wait_seconds = round(left_after, 1)
            call.result = "timeout" if patience >= 600 else "short_abandon" if left_after < 5 else "abandoned"
            call.ended_at = call.enqueued_at + timedelta(seconds=call.wait_seconds)
            return
        call.wait_seconds = round(wait, 1)
        call.agent_id = agent_id
        call.answered_at = call.enqueued_at + timedelta(seconds=call.wait_seconds)
        call.reason = _weighted(rng, CALL_REASON_WEIGHTS)
        call.talk_seconds = round(min(_lognormal(rng, 210 * speed[agent_id], 0.6), 2400), 1)
        call.ended_at = call.answered_at + timedelta(seconds=call.talk_seconds)
        call.wrap_up_seconds = round(rng.uniform(12, 55), 1)
        call.wrapped_up_at = call.ended_at + timedelta(seconds=call.wrap_up_seconds)
        call.notes = rng.choice(CALL_NOTES)
        free_at[agent_id] = call.wrapped_up_at + timedelta(seconds=rng.uniform(5, 240))

    # --- tickets ---

    def draw_tickets(self) -> None:
        rng = self.rng
        by_id = self.by_id
        for call in self.calls:
            if call.result != "answered" or call.customer_id is None or call.wrapped_up_at > self.now:
                continue
            if rng.random() >= TICKET_FROM_CALL.get(call.reason, 0.05):
                continue
            ticket = self._ticket(
                by_id[call.customer_id],
                call.reason,
                "phone",
                created_at=call.answered_at + timedelta(seconds=call.talk_seconds * rng.uniform(0.5, 0.95)),
                assignee=call.agent_id,
                created_by=call.agent_id,
            )
            ticket.call_id = call.call_id
            ticket.first_responded_at = call.answered_at if call.answered_at > ticket.created_at else ticket.created_at
            call.ticket_id = ticket.id
            self._live_through(ticket)
        day = self.first_day
        while day <= self.today:
            for _ in range(_poisson(self.rng, 2.5 if day.weekday() >= 5 else 6)):
                created = _at_day_seconds(day, rng.uniform(0, 86400))
                if created >= self.now:
                    continue
                category = _weighted(rng, WRITTEN_TICKET_CATEGORIES)
                customer = rng.choice(self.customers) if rng.random() < 0.93 else None
                assignee = rng.choice(AGENTS).id if rng.random() < 0.85 else None
                ticket = self._ticket(
                    customer, category, rng.choice(("email", "email", "web")), created, assignee, None
                )
                if assignee:
                    self._respond(ticket, RESPONSE_MEDIAN_MINUTES[ticket.priority])
                self._live_through(ticket)
            day += timedelta(days=1)

    def _ticket(self, customer, category, channel, created_at, assignee, created_by) -> DemoTicket:
        rng = self.rng
        purchase = self.product_of(customer, created_at)
        product = purchase.product if purchase else "kettle"
        subject = rng.choice(SUBJECTS[category]).format(product=product)
        priority = rng.choice(CATEGORY_PRIORITY[category])
        if category == "complaint" and rng.random() < 0.1:
            priority = "urgent"
        description = f"{subject}."
        if purchase:
            description += f" Order {purchase.order_ref} ({purchase.product}, {purchase.purchased_at:%d %b %Y})."
        ticket = DemoTicket(
            id=self.id("ticket", len(self.tickets)),
            number=0,
            customer_id=customer.id if customer else None,
            subject=subject,
            description=description,
            category=category,
            priority=priority,
            channel=channel,
            created_at=created_at.replace(microsecond=0),
            assignee_id=assignee,
            created_by=created_by,
            tags=[category] if rng.random() < 0.3 else [],
        )
        self.tickets.append(ticket)
        return ticket

    def _respond(self, ticket: DemoTicket, median_minutes: float) -> None:
        at = ticket.created_at + timedelta(minutes=_lognormal(self.rng, median_minutes))
        if at < self.now:
            ticket.first_responded_at = at.replace(microsecond=0)
            ticket.comments.append(self._comment(ticket, ticket.assignee_id, "first", True, ticket.first_responded_at))

    def _comment(self, ticket: DemoTicket, author, kind: str, public: bool, at: datetime) -> DemoComment:
        return DemoComment(
            self.id("comment", f"{ticket.id}:{len(ticket.comments)}"),
            author,
            self.rng.choice(REPLIES[kind]),
            public,
            at.replace(microsecond=0),
        )

    def _live_through(self, ticket: DemoTicket) -> None:
        """What became of the ticket by now: notes, a customer's answer, pending, resolved, closed."""
        rng = self.rng
        if ticket.assignee_id is None or ticket.first_responded_at is None:
            return  # still waiting for someone to pick it up
        if rng.random() < 0.3:
            at = ticket.first_responded_at + timedelta(minutes=rng.uniform(5, 240))
            if at < self.now:
                ticket.comments.append(self._comment(ticket, ticket.assignee_id, "note", False, at))
        resolve_at = ticket.created_at + timedelta(minutes=_lognormal(rng, RESOLUTION_MEDIAN_MINUTES[ticket.priority]))
        resolve_at = max(resolve_at, ticket.first_responded_at + timedelta(minutes=rng.uniform(2, 30)))
        if resolve_at >= self.now:
            if rng.random() < 0.35:
                ticket.pending_since = ticket.first_responded_at + timedelta(minutes=rng.uniform(1, 60))
                if ticket.pending_since >= self.now:
                    ticket.pending_since = None
            return
        if rng.random() < 0.35:
            asked = ticket.first_responded_at + (resolve_at - ticket.first_responded_at) / 2
            ticket.comments.append(self._comment(ticket, None, "customer", True, asked))
        ticket.resolved_at = resolve_at.replace(microsecond=0)
        ticket.comments.append(self._comment(ticket, ticket.assignee_id, "resolved", True, ticket.resolved_at))
        if ticket.resolved_at + timedelta(days=3) < self.now:
            ticket.closed_at = ticket.resolved_at + timedelta(days=3)

    # --- follow-up calls after purchases ---

    def draw_followups(self) -> None:
        rng = self.rng
        by_id = self.by_id
        window_start = _at_day_seconds(self.first_day, 0)
        contacted_until: dict[str, datetime] = {}  # the contact-frequency rule, roughly: one entry a fortnight
        for purchase in self.purchases:
            due = purchase.purchased_at + timedelta(days=POST_PURCHASE_DELAY_DAYS)
            customer = by_id[purchase.customer_id]
            if due < window_start or customer.do_not_call or not customer.phones:
                continue
            if contacted_until.get(customer.id, window_start) > purchase.purchased_at:
                continue
            contacted_until[customer.id] = purchase.purchased_at + timedelta(days=14)
            entry = DemoEntry(
                id=self.id("entry", purchase.id),
                campaign_id=self.campaign.id,
                customer_id=customer.id,
                purchase_id=purchase.id,
                time_zone=customer.time_zone or "America/New_York",
                created_at=purchase.purchased_at + timedelta(seconds=2),
                due_at=due,
            )
            self.entries.append(entry)
            attempt_at = due + timedelta(hours=rng.uniform(0, 6))
            while attempt_at < self.now - timedelta(minutes=10):
                outcome = _weighted(
                    rng,
                    {
                        "reached": 46,
                        "no_answer": 24,
                        "voicemail": 12,
                        "busy": 8,
                        "callback_requested": 4,
                        "wrong_number": 3,
                        "do_not_call": 3,
                    },
                )
                agent = rng.choice(AGENTS).id
                talk = rng.uniform(120, 420) if outcome == "reached" else rng.uniform(15, 45)
                attempt = DemoAttempt(
                    id=self.id("attempt", f"{entry.id}:{len(entry.attempts)}"),
                    number=len(entry.attempts) + 1,
                    agent_id=agent,
                    outcome=outcome,
                    offer_accepted=(rng.random() < 0.3) if outcome == "reached" else None,
                    notes="Happy with the product." if outcome == "reached" and rng.random() < 0.4 else None,
                    started_at=attempt_at.replace(microsecond=0),
                    ended_at=(attempt_at + timedelta(seconds=talk)).replace(microsecond=0),
                )
                entry.attempts.append(attempt)
                if outcome in ("reached", "wrong_number", "do_not_call"):
                    entry.state, entry.closed_at = "completed", attempt.ended_at
                    break
                if len(entry.attempts) >= 3:
                    entry.state, entry.closed_at = "exhausted", attempt.ended_at
                    break
                attempt_at = attempt.ended_at + timedelta(hours=rng.uniform(20, 30))
                entry.due_at = attempt_at.replace(microsecond=0)

    # --- surveys and the service recovery they start ---

    def draw_responses(self) -> None:
        rng = self.rng
        by_id = self.by_id
        recent = self.now - timedelta(minutes=20)
        for call in self.calls:  # the keypad survey after an answered call
            if call.result == "answered" and call.customer_id and call.ended_at < recent and rng.random() < 0.75:
                purchase = self.product_of(by_id[call.customer_id], call.enqueued_at)
                self._response(
                    call.customer_id,
                    "keypad",
                    call.ended_at + timedelta(seconds=5),
                    agent_id=call.agent_id,
                    call_id=call.call_id,
                    purchase=purchase,
                )
        for entry in self.entries:  # asked by the agent at the end of a reached follow-up call
            last = entry.attempts[-1] if entry.attempts else None
            if last and last.outcome == "reached" and rng.random() < 0.75:
                purchase = next(p for p in self.purchases_of[entry.customer_id] if p.id == entry.purchase_id)
                self._response(
                    entry.customer_id,
                    "agent",
                    last.ended_at - timedelta(seconds=60),
                    agent_id=last.agent_id,
                    entry_id=entry.id,
                    campaign_id=entry.campaign_id,
                    purchase=purchase,
                )
        for purchase in self.purchases:  # the web link e-mailed after a purchase
            answered = purchase.purchased_at + timedelta(days=rng.uniform(1, 6))
            if _at_day_seconds(self.first_day, 0) <= answered < recent and rng.random() < 0.4:
                self._response(purchase.customer_id, "link", answered, purchase=purchase)
        self.responses.sort(key=lambda response: response.started_at)

    def _response(self, customer_id, channel, started_at, *, purchase=None, **provenance) -> None:
        rng = self.rng
        mood = rng.random()
        base = 9.0 if mood < 0.75 else 7.6 if mood < 0.93 else 3.0
        answers = {key: max(1, min(10, round(rng.gauss(base, 1.0)))) for key, _kind in SURVEY_QUESTIONS}
        partial = channel == "keypad" and rng.random() < 0.06
        if partial:
            answers = dict(list(answers.items())[: rng.randint(1, 3)])
        duration = timedelta(seconds=rng.uniform(40, 150) if channel != "link" else rng.uniform(60, 400))
        comments = SURVEY_COMMENTS_UNHAPPY if base < 5 else SURVEY_COMMENTS_HAPPY
        customer = self.by_id[customer_id]
        self.responses.append(
            DemoResponse(
                id=self.id("response", len(self.responses)),
                customer_id=customer_id,
                channel=channel,
                answers=answers,
                started_at=started_at.replace(microsecond=0),
                completed_at=None if partial else (started_at + duration).replace(microsecond=0),
                purchase_id=purchase.id if purchase else None,
                product=purchase.product if purchase else None,
                comment=None if partial or channel == "keypad" else rng.choice(comments),
                language="de" if customer.country == "DE" else "en",
                **provenance,
            )
        )

    def draw_recovery(self) -> None:
        """A low score (a "recommend" of 6 or less, any answer of 4 or less) opens an urgent ticket
        within minutes, as the tickets service does on ``survey.low_score``."""
        rng = self.rng
        kinds = dict(SURVEY_QUESTIONS)
        for response in self.responses:
            if response.completed_at is None:
                continue
            low = [
                key
                for key, score in response.answers.items()
                if score <= 4 or (kinds[key] == "recommend" and score <= 6)
            ]
            opened = response.completed_at + timedelta(seconds=rng.uniform(2, 90))
            if not low or opened >= self.now:
                continue
            subject, description = recovery_ticket_text(low, response.answers, response.product, response.comment)
            ticket = DemoTicket(
                id=self.id("ticket", len(self.tickets)),
                number=0,
                customer_id=response.customer_id,
                subject=subject,
                description=description,
                category="service_recovery",
                priority="urgent",
                channel="survey",
                created_at=opened.replace(microsecond=0),
                assignee_id=None,
                created_by=None,
                call_id=response.call_id,
                survey_response_id=response.id,
                tags=["low_score"],
            )
            self.tickets.append(ticket)
            if rng.random() < 0.9:  # a supervisor hands it to an agent, who calls the customer back
                ticket.assignee_id = rng.choice(AGENTS).id
                self._respond(ticket, RESPONSE_MEDIAN_MINUTES["urgent"])
                self._live_through(ticket)

    def build(self) -> DemoWorld:
        self.draw_customers()
        self.draw_purchases()
        self.draw_calls()
        self.draw_tickets()
        self.draw_followups()
        self.draw_responses()
        self.draw_recovery()
        # Ticket numbers in the order the tickets were opened, as the service's counter gives them.
        self.tickets.sort(key=lambda ticket: (ticket.created_at, ticket.id))
        for number, ticket in enumerate(self.tickets, start=1):
            ticket.number = number
        return DemoWorld(
            seed=self.seed,
            now=self.now,
            first_day=self.first_day,
            users=STAFF,
            customers=self.customers,
            purchases=self.purchases,
            calls=self.calls,
            tickets=self.tickets,
            campaigns=[self.campaign, self.resurvey_campaign],
            entries=self.entries,
            responses=self.responses,
        )


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: fine for the small means of calls per hour.
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _ascii(text: str) -> str:
    table = str.maketrans(
        {
            "ä": "ae",
            "ö": "oe",
            "ü": "ue",
            "ß": "ss",
            "é": "e",
            "è": "e",
            "ë": "e",
            "ï": "i",
            "ô": "o",
            "ç": "c",
            "à": "a",
            "í": "i",
            "á": "a",
            "ñ": "n",
            "ó": "o",
        }
    )
    return text.translate(table)


def build_world(
    seed: int = DEFAULT_SEED, now: datetime | None = None, days: int = DEFAULT_DAYS, customers: int = DEFAULT_CUSTOMERS
) -> DemoWorld:
    """The demo world of ``seed``: ``days`` full days of history before ``now``'s day, and that day until ``now``."""
    return _World(seed, now or datetime.now(UTC), days, customers).build()
