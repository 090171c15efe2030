"""The rules of 1-10 surveys, with no I/O: answers, the low-score rule, rollups and statistics.

Every formula here is the product brief's (section 4). Metrics are computed from rollup
sums (n, Σs, Σs², a count per score 1..10), which is all the statistics below need: a
mean and its t-interval need n, Σs and Σs²; CSAT needs the count of 9s and 10s; the 1-10
NPS needs promoters (9-10) and detractors (1-6).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
from scipy import stats

SCALE = range(1, 11)
Z_95 = 1.96  # the brief's fixed z for the Wilson and adjusted-Wald intervals
CONFIDENCE = 0.95

# The default template: the five questions of the product brief (section 2). The migration
# seeds the same data under this id; a new version of it is a POST /templates with this id.
DEFAULT_TEMPLATE_ID = "6f1c3a52-3d0e-5b8a-9c41-2f6d7e8a9b10"
DEFAULT_QUESTIONS = [
    {
        "key": "product",
        "kind": "rating",
        "required": True,
        "texts": {
            "en": "How well did the product meet your expectations?",
            "de": "Wie gut hat das Produkt Ihre Erwartungen erfüllt?",
            "fr": "Dans quelle mesure le produit a-t-il répondu à vos attentes ?",
            "tl": "Gaano natugunan ng produkto ang inyong inaasahan?",
            "zh-Hans": "产品在多大程度上符合您的期望？",
            "zh-Hant": "產品在多大程度上符合您的期望？",
        },
    },
    {
        "key": "service",
        "kind": "rating",
        "required": True,
        "texts": {
            "en": "How well did our service meet your expectations?",
            "de": "Wie gut hat unser Service Ihre Erwartungen erfüllt?",
            "fr": "Dans quelle mesure notre service a-t-il répondu à vos attentes ?",
            "tl": "Gaano natugunan ng aming serbisyo ang inyong inaasahan?",
            "zh-Hans": "我们的服务在多大程度上符合您的期望？",
            "zh-Hant": "我們的服務在多大程度上符合您的期望？",
        },
    },
    {
        "key": "purchase",
        "kind": "rating",
        "required": True,
        "texts": {
            "en": "How was the purchase experience?",
            "de": "Wie war Ihr Einkaufserlebnis?",
            "fr": "Comment s’est passé votre achat ?",
            "tl": "Kumusta ang inyong karanasan sa pagbili?",
            "zh-Hans": "您的购物体验如何？",
            "zh-Hant": "您的購物體驗如何？",
        },
    },
    {
        "key": "recommend_product",
        "kind": "recommend",
        "required": True,
        "texts": {
            "en": "Would you recommend the product to your friends?",
            "de": "Würden Sie das Produkt Ihren Freunden empfehlen?",
            "fr": "Recommanderiez-vous le produit à vos amis ?",
            "tl": "Irerekomenda ba ninyo ang produkto sa inyong mga kaibigan?",
            "zh-Hans": "您会向朋友推荐这款产品吗？",
            "zh-Hant": "您會向朋友推薦這款產品嗎？",
        },
    },
    {
        "key": "recommend_store",
        "kind": "recommend",
        "required": True,
        "texts": {
            "en": "Would you recommend our store as a whole?",
            "de": "Würden Sie unser Geschäft insgesamt weiterempfehlen?",
            "fr": "Recommanderiez-vous notre magasin dans son ensemble ?",
            "tl": "Irerekomenda ba ninyo ang aming tindahan sa kabuuan?",
            "zh-Hans": "总体而言，您会推荐我们的商店吗？",
            "zh-Hant": "整體而言，您會推薦我們的商店嗎？",
        },
    },
]

# What the phone says around the questions, per language (the question texts are template data).
KEYPAD_PHRASES = {
    "en": {
        "voice_language": "en-US",
        "intro": "Thank you for taking our short survey.",
        "instructions": "Please type a number from 1 to 10, then press the hash key.",
        "invalid": "Sorry, that was not a number from 1 to 10.",
        "thanks": "Thank you for your answers. Goodbye.",
        "incomplete": "We could not record your answers. Goodbye.",
    },
    "de": {
        "voice_language": "de-DE",
        "intro": "Vielen Dank, dass Sie an unserer kurzen Umfrage teilnehmen.",
        "instructions": "Bitte geben Sie eine Zahl von 1 bis 10 ein und drücken Sie dann die Rautetaste.",
        "invalid": "Das war leider keine Zahl von 1 bis 10.",
        "thanks": "Vielen Dank für Ihre Antworten. Auf Wiederhören.",
        "incomplete": "Wir konnten Ihre Antworten nicht aufnehmen. Auf Wiederhören.",
    },
    "fr": {
        "voice_language": "fr-FR",
        "intro": "Merci de répondre à notre courte enquête.",
        "instructions": "Tapez un nombre de 1 à 10, puis la touche dièse.",
        "invalid": "Désolé, ce n’était pas un nombre de 1 à 10.",
        "thanks": "Merci pour vos réponses. Au revoir.",
        "incomplete": "Nous n’avons pas pu enregistrer vos réponses. Au revoir.",
    },
    "tl": {
        "voice_language": "fil-PH",
        "intro": "Salamat sa pagsagot sa aming maikling survey.",
        "instructions": "Mag-type po ng numero mula 1 hanggang 10, saka pindutin ang hash key.",
        "invalid": "Paumanhin, hindi iyon numero mula 1 hanggang 10.",
        "thanks": "Salamat po sa inyong mga sagot. Paalam.",
        "incomplete": "Hindi namin naitala ang inyong mga sagot. Paalam.",
    },
    "zh-Hans": {
        "voice_language": "cmn-CN",
        "intro": "感谢您参加我们的简短调查。",
        "instructions": "请输入 1 到 10 之间的数字，然后按井号键。",
        "invalid": "抱歉，这不是 1 到 10 之间的数字。",
        "thanks": "感谢您的回答。再见。",
        "incomplete": "我们无法记录您的回答。再见。",
    },
    "zh-Hant": {
        "voice_language": "cmn-TW",
        "intro": "感謝您參加我們的簡短調查。",
        "instructions": "請輸入 1 到 10 之間的數字，然後按井字鍵。",
        "invalid": "抱歉，這不是 1 到 10 之間的數字。",
        "thanks": "感謝您的回答。再見。",
        "incomplete": "我們無法記錄您的回答。再見。",
    },
}
KEYPAD_REPROMPTS = 2  # a question is asked at most 1 + 2 times

# Rollup dimensions: "all" (one bucket, for day/week series and totals) and the attributes
# a manager groups by. The time dimensions (day, week) are columns of every rollup row.
ALL = "all"
ATTRIBUTE_DIMENSIONS = ("product", "agent", "campaign", "channel")
TIME_DIMENSIONS = ("day", "week")

# callentry.completed outcomes, as the response rate reports them.
CONTACT_MEASURES = {
    "reached": "reached",
    "no_answer": "no_contact",
    "busy": "no_contact",
    "voicemail": "no_contact",
    "wrong_number": "no_contact",
    "callback_requested": "callback_requested",
    "do_not_call": "refused",
}


COMPLETE, PARTIAL, IN_PROGRESS = "complete", "partial", "in_progress"  # a response's status
PROVENANCE_FIELDS = ("agent_id", "call_id", "entry_id", "campaign_id", "purchase_id")


@dataclass(frozen=True)
class Provenance:
    """Where a response or link came from."""

    agent_id: str | None = None
    call_id: str | None = None
    entry_id: str | None = None
    campaign_id: str | None = None
    purchase_id: str | None = None

    @classmethod
    def of(cls, values: Mapping) -> Provenance:
        return cls(**{name: None if values.get(name) is None else str(values.get(name)) for name in PROVENANCE_FIELDS})


def as_utc(moment: datetime) -> datetime:
    """A moment in UTC (a naive one is taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time(text: str) -> datetime:
    """An event's RFC 3339 moment, in UTC."""
    return as_utc(datetime.fromisoformat(text))


class InvalidAnswers(ValueError):
    """Answers that break the template; ``errors`` maps each question key to what is wrong."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True)
class Question:
    key: str
    kind: str  # "rating" or "recommend" (a recommend question also gets a 1-10 NPS)
    required: bool
    texts: Mapping[str, str]

    def text(self, language: str) -> str:
        """The question in ``language``, else in the template's first language."""
        return self.texts.get(language) or next(iter(self.texts.values()))


@dataclass(frozen=True)
class Template:
    template_id: str
    version: int
    questions: tuple[Question, ...]

    @classmethod
    def of(cls, template_id: str, version: int, questions: Iterable[Mapping]) -> Template:
        return cls(
            template_id, version, tuple(Question(q["key"], q["kind"], q["required"], q["texts"]) for q in questions)
        )

    @property
    def keys(self) -> list[str]:
        return [question.key for question in self.questions]

    @property
    def languages(self) -> list[str]:
        """The languages its questions are asked in, its first language first."""
        return list(self.questions[0].texts) if self.questions else ["en"]

    def question(self, key: str) -> Question | None:
        return next((question for question in self.questions if question.key == key), None)


def valid_score(value) -> bool:
    """An integer 1..10, and nothing else: not 7.5, not "7", not True (a bool is an int in Python)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 10


def check_answers(template: Template, answers: Mapping[str, object], *, partial: bool) -> dict[str, int]:
    """The answers if each is a score 1..10 for a question of the template; else InvalidAnswers.

    A complete response must answer every required question; a partial one (the customer
    hung up) may leave any out.
    """
    errors: dict[str, str] = {}
    for key, value in answers.items():
        if template.question(key) is None:
            errors[key] = f"No question {key!r} in template version {template.version}."
        elif not valid_score(value):
            errors[key] = f"Must be a whole number from 1 to 10, not {value!r}."
    if not partial:
        for question in template.questions:
            if question.required and question.key not in answers:
                errors[question.key] = "A required question was not answered."
    if errors:
        raise InvalidAnswers(errors)
    return {key: int(value) for key, value in answers.items()}


def parse_keypad_digits(digits: str | None) -> int | None:
    """The score typed on a keypad ("7", "10", "07"), or None when it is not 1..10."""
    if not digits or not digits.isdigit():
        return None
    score = int(digits)
    return score if 1 <= score <= 10 else None


@dataclass(frozen=True)
class LowScoreRule:
    """The brief's rule: a "recommend" answer of 6 or less, or any answer of 4 or less."""

    recommend_at_most: int = 6
    any_at_most: int = 4

    def low_questions(self, template: Template, answers: Mapping[str, int]) -> list[str]:
        low = []
        for question in template.questions:
            score = answers.get(question.key)
            if score is None:
                continue
            if score <= self.any_at_most or (question.kind == "recommend" and score <= self.recommend_at_most):
                low.append(question.key)
        return low


def resurvey_request_id(response_id: str) -> str:
    """One re-survey per response, however often its ticket is resolved: the id is derived from it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:callcenter:surveys:resurvey:{response_id}"))


# --- rollups ------------------------------------------------------------------------------


def day_of(moment: datetime) -> str:
    return moment.date().isoformat()


def week_of(day: str) -> str:
    """The ISO week a day falls in, named by its Monday."""
    parsed = date.fromisoformat(day)
    return (parsed - timedelta(days=parsed.weekday())).isoformat()


def dimension_values(provenance: Mapping[str, object]) -> list[tuple[str, str]]:
    """(dimension, value) buckets a response or contact counts in; "" stands for unknown."""
    return [(ALL, "")] + [(dimension, str(provenance.get(dimension) or "")) for dimension in ATTRIBUTE_DIMENSIONS]


@dataclass
class Sums:
    """What a rollup row holds: enough for every figure of the brief."""

    n: int = 0
    total: int = 0
    squares: int = 0
    counts: list[int] = field(default_factory=lambda: [0] * 10)

    def add(self, score: int, sign: int = 1) -> None:
        self.n += sign
        self.total += sign * score
        self.squares += sign * score * score
        self.counts[score - 1] += sign

    def merge(self, other: Sums) -> None:
        self.n += other.n
        self.total += other.total
        self.squares += other.squares
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]

    @property
    def top_two(self) -> int:
        return self.counts[8] + self.counts[9]

    @property
    def promoters(self) -> int:
        return self.counts[8] + self.counts[9]

    @property
    def detractors(self) -> int:
        return sum(self.counts[:6])


# span ("day" or "week"), dimension, start (the day, or the Monday of the week), value, template_id,
# question, and the question's kind in the version answered: a template's versions whose question is
# the same (same kind; the scale is always 1-10) pool in one row, a question whose kind changed
# between versions starts rows of its own, and two templates never share a row.
RollupKey = tuple[str, str, str, str, str, str, str]
SPANS = ("day", "week")
RATING = "rating"


def answer_kinds(template: Template | None) -> dict[str, str]:
    """Each question's kind in one template version (what its answers are counted as)."""
    return {question.key: question.kind for question in template.questions} if template else {}


def rollup_deltas(
    template_id: str,
    day: str,
    provenance: Mapping[str, object],
    answers: Mapping[str, int],
    kinds: Mapping[str, str],
) -> dict[RollupKey, Sums]:
    """The rollup rows one complete response adds to: each answer in each dimension's bucket, for
    its day and for its week (so a query over whole weeks reads a seventh of the rows), under the
    kind its question has in the version answered (``kinds``, from ``answer_kinds``)."""
    deltas: dict[RollupKey, Sums] = {}
    starts = (("day", day), ("week", week_of(day)))
    for dimension, value in dimension_values(provenance):
        for question, score in answers.items():
            kind = kinds.get(question, RATING)
            for span, start in starts:
                sums = deltas.setdefault((span, dimension, start, value, template_id, question, kind), Sums())
                sums.add(score)
    return deltas


# What one answer adds to its rollup rows: n, Σs, Σs² and the count of its score (c1..c10).
ANSWER_SUMS = {score: (1, score, score * score, *(int(score == other) for other in SCALE)) for score in SCALE}


def rollup_rows(
    template_id: str,
    day: str,
    provenance: Mapping[str, object],
    answers: Mapping[str, int],
    kinds: Mapping[str, str],
) -> list[tuple]:
    """``rollup_deltas`` of one response as rows (key..., n, total, squares, c1..c10) for one upsert.

    A response answers each question once, so its keys never repeat and each row is one answer's
    sums; built from ``ANSWER_SUMS`` without a ``Sums`` per row (a test holds the two equal).
    """
    starts = (("day", day), ("week", week_of(day)))
    return [
        (span, dimension, start, value, template_id, question, kinds.get(question, RATING), *ANSWER_SUMS[score])
        for dimension, value in dimension_values(provenance)
        for question, score in answers.items()
        for span, start in starts
    ]


def recompute_rollups(
    responses: Iterable[Mapping], templates: Mapping[tuple[str, int], Template]
) -> dict[RollupKey, Sums]:
    """Rollups from scratch, from complete responses (each with ``template_id``, ``template_version``,
    ``day``, ``answers`` and its dimensions) and the template versions they answered, keyed by
    (template_id, version): what the incremental ones must equal, and what a rebuild writes."""
    totals: dict[RollupKey, Sums] = {}
    kinds_of: dict[tuple[str, int], dict[str, str]] = {}
    for response in responses:
        version = (response["template_id"], response["template_version"])
        kinds = kinds_of.get(version)
        if kinds is None:
            kinds = kinds_of[version] = answer_kinds(templates.get(version))
        deltas = rollup_deltas(response["template_id"], response["day"], response, response["answers"], kinds)
        for key, sums in deltas.items():
            totals.setdefault(key, Sums()).merge(sums)
    return totals


# A figure of the metrics: one template's question as answered with one kind.
FigureKey = tuple[str, str, str]  # template_id, question key, kind


def question_groups(templates: Iterable[Template], language: str | None = None) -> dict[FigureKey, dict]:
    """What each figure covers: per (template, question, kind), the ``versions`` whose question has
    that kind (ascending) and its ``label``, the question's text in ``language`` (else the version's
    first language) in the latest of those versions."""
    groups: dict[FigureKey, dict] = {}
    for template in sorted(templates, key=lambda t: (t.template_id, t.version)):
        for question in template.questions:
            group = groups.setdefault((template.template_id, question.key, question.kind), {"versions": []})
            group["versions"].append(template.version)
            offered = list(question.texts)
            group["label"] = question.texts[choose_language(offered, language)] if offered else question.key
    return groups


# --- statistics ---------------------------------------------------------------------------
#
# One implementation: each figure is computed on numpy arrays (many questions and groups at once,
# what the metrics report runs), and the one-at-a-time functions below each are thin wrappers that
# pass arrays of one. scipy computes what it has: the t quantile, Welch's test
# (``ttest_ind_from_stats``, on arrays) and the normal tail; the Wilson interval, the 1-10 NPS
# interval and the pooled two-proportion z are the brief's formulas with its fixed z = 1.96.


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def _arrays(*values) -> list[np.ndarray]:
    return [np.atleast_1d(np.asarray(value, dtype=float)) for value in values]


def mean_t_intervals(n, total, squares, confidence: float = CONFIDENCE):
    """Means with a two-sided Student-t interval, from arrays of sums: (mean, low, high, variance).

    mean ± t(1 - a/2, n-1) · s/√n with a = 1 - confidence and s² = (Σs² - (Σs)²/n) / (n-1), the
    sample variance from the sums (NaN where n < 2).
    """
    n, total, squares = _arrays(n, total, squares)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        variance = np.maximum((squares - total * total / n) / (n - 1), 0.0)
        half = stats.t.ppf(1 - (1 - confidence) / 2, n - 1) * np.sqrt(variance / n)
    return mean, mean - half, mean + half, variance


def wilson_intervals(successes, n, z: float = Z_95):
    """Proportions with their Wilson score interval, on arrays: (p̂, low, high).

    centre = (p̂ + z²/2n) / (1 + z²/n),
    half   = z/(1 + z²/n) · √(p̂(1-p̂)/n + z²/4n²),
    where p̂ = successes/n. The value reported is p̂ itself; the interval is centre ± half, within 0..1.
    """
    successes, n = _arrays(successes, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = successes / n
        z2 = z * z
        denominator = 1 + z2 / n
        centre = (p + z2 / (2 * n)) / denominator
        half = z / denominator * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return p, np.maximum(centre - half, 0.0), np.minimum(centre + half, 1.0)


def nps_adjusted_walds(promoters, detractors, n, z: float = Z_95):
    """The 1-10 NPS with the brief's adjusted-Wald 95% interval, on arrays: (nps, centre, moe).

    NPS = 100 (P - D)/n; n' = n + 3, p = (P + 0.75)/n', d = (D + 0.75)/n',
    SE = √((p + d - (p - d)²)/n'), MOE = z · SE · 100, interval = 100 (p - d) ± MOE.
    """
    promoters, detractors, n = _arrays(promoters, detractors, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        adjusted = n + 3
        p, d = (promoters + 0.75) / adjusted, (detractors + 0.75) / adjusted
        moe = z * np.sqrt((p + d - (p - d) ** 2) / adjusted) * 100
        return 100 * (promoters - detractors) / n, 100 * (p - d), moe


def welch_p_values(mean, variance, n, before_mean, before_variance, before_n):
    """Welch's t-test of two means from their summaries (scipy's ``ttest_ind_from_stats``, on
    arrays); where both variances are 0, 1 if the means are equal, else 0."""
    mean, variance, n, before_mean, before_variance, before_n = _arrays(
        mean, variance, n, before_mean, before_variance, before_n
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = variance / n + before_variance / before_n
        tested = stats.ttest_ind_from_stats(
            mean, np.sqrt(variance), n, before_mean, np.sqrt(before_variance), before_n, equal_var=False
        ).pvalue
    return np.where(spread > 0, tested, np.where(mean == before_mean, 1.0, 0.0))


def two_proportion_p_values(k1, n1, k2, n2):
    """The two-proportion z-test of k1/n1 against k2/n2, on arrays:
    z = (p1 - p2) / √(p̄(1-p̄)(1/n1 + 1/n2)) with the pooled p̄ = (k1 + k2)/(n1 + n2); 1 where p̄(1-p̄) = 0."""
    k1, n1, k2, n2 = _arrays(k1, n1, k2, n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (k1 + k2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        return np.where(se > 0, 2 * stats.norm.sf(np.abs(k1 / n1 - k2 / n2) / se), 1.0)


def mean_t_interval(n: int, total: float, squares: float, confidence: float = CONFIDENCE) -> Interval | None:
    """``mean_t_intervals`` of one mean; None for n < 2."""
    if n < 2:
        return None
    mean, low, high, _variance = mean_t_intervals(n, total, squares, confidence)
    return Interval(float(mean[0]), float(low[0]), float(high[0]))


def sample_sd(n: int, total: float, squares: float) -> float:
    return float(np.sqrt(mean_t_intervals(n, total, squares)[3][0])) if n > 1 else 0.0


def wilson_interval(successes: int, n: int, z: float = Z_95) -> Interval | None:
    """``wilson_intervals`` of one proportion; None for n = 0."""
    if n <= 0:
        return None
    p, low, high = wilson_intervals(successes, n, z)
    return Interval(float(p[0]), float(low[0]), float(high[0]))


@dataclass(frozen=True)
class NpsFigure:
    nps: float  # the plain 1-10 NPS, the figure to report
    centre: float  # the adjusted-Wald centre, 100 (p - d)
    moe: float
    low: float
    high: float


def nps_adjusted_wald(promoters: int, detractors: int, n: int, z: float = Z_95) -> NpsFigure | None:
    """``nps_adjusted_walds`` of one question; None for n = 0."""
    if n <= 0:
        return None
    nps, centre, moe = (float(value[0]) for value in nps_adjusted_walds(promoters, detractors, n, z))
    return NpsFigure(nps, centre, moe, centre - moe, centre + moe)


@dataclass(frozen=True)
class Change:
    delta: float
    p_value: float
    significant: bool


def welch_change(current: Sums, previous: Sums, alpha: float = 0.05) -> Change | None:
    """The change of the mean and Welch's t-test of it (``welch_p_values``), from the two periods' sums."""
    if current.n < 2 or previous.n < 2:
        return None
    mean, _low, _high, variance = mean_t_intervals(current.n, current.total, current.squares)
    before_mean, _low, _high, before_variance = mean_t_intervals(previous.n, previous.total, previous.squares)
    p_value = float(welch_p_values(mean, variance, current.n, before_mean, before_variance, previous.n)[0])
    return Change(float(mean[0] - before_mean[0]), p_value, p_value < alpha)


def two_proportion_change(k1: int, n1: int, k2: int, n2: int, alpha: float = 0.05) -> Change | None:
    """The change of a proportion (k1/n1 now against k2/n2 before) and ``two_proportion_p_values``."""
    if n1 <= 0 or n2 <= 0:
        return None
    p_value = float(two_proportion_p_values(k1, n1, k2, n2)[0])
    return Change(k1 / n1 - k2 / n2, p_value, p_value < alpha)


# --- the metrics report -------------------------------------------------------------------

NPS_LABEL = "1-10 NPS"
_NO_ANSWERS = Sums()  # what a group had before when it had nothing (only read, never added to)


def _column(values) -> np.ndarray:
    return np.asarray(values, dtype=float)


def batch_figures(current: list[Sums], previous: list[Sums], recommend: list[bool], min_n: int) -> list[dict]:
    """``question_figures`` for many questions and groups at once: each statistic above computed
    once over arrays, so a report of thousands of figures costs a few scipy calls instead of thousands."""
    if not current:
        return []
    n, total, squares = (_column([getattr(s, name) for s in current]) for name in ("n", "total", "squares"))
    top_two = _column([s.top_two for s in current])
    detractors = _column([s.detractors for s in current])
    before_n, before_total, before_squares = (
        _column([getattr(s, name) for s in previous]) for name in ("n", "total", "squares")
    )
    before_top_two = _column([s.top_two for s in previous])
    mean, low, high, variance = mean_t_intervals(n, total, squares)
    p, wilson_low, wilson_high = wilson_intervals(top_two, n)
    nps, nps_centre, moe = nps_adjusted_walds(top_two, detractors, n)
    before_mean, _low, _high, before_variance = mean_t_intervals(before_n, before_total, before_squares)
    welch_p = welch_p_values(mean, variance, n, before_mean, before_variance, before_n)
    z_p = two_proportion_p_values(top_two, n, before_top_two, before_n)
    with np.errstate(divide="ignore", invalid="ignore"):
        before_p = before_top_two / before_n

    # Rounded and turned into plain lists once: indexing numpy arrays one scalar at a time is slow.
    def rounded(values, digits):
        return np.round(values, digits).tolist()

    mean_value, mean_low, mean_high = rounded(mean, 4), rounded(low, 4), rounded(high, 4)
    csat_value = rounded(p, 4)
    csat_low, csat_high = rounded(wilson_low, 4), rounded(wilson_high, 4)
    nps_value = rounded(nps, 2)
    nps_mid, nps_moe = rounded(nps_centre, 2), rounded(moe, 2)
    nps_low, nps_high = rounded(nps_centre - moe, 2), rounded(nps_centre + moe, 2)
    mean_delta, mean_p = rounded(mean - before_mean, 4), rounded(welch_p, 6)
    csat_delta, csat_p = rounded(p - before_p, 4), rounded(z_p, 6)

    # Each figure built in one expression, in the order its keys are reported.
    reason = f"fewer than {min_n} answers"
    figures = []
    for i, sums in enumerate(current):
        n_i = sums.n
        if n_i < min_n:
            figures.append(
                {
                    "n": n_i,
                    "distribution": list(sums.counts),
                    "withheld": True,
                    "withheld_reason": reason,
                    "mean": None,
                    "csat": None,
                    "nps": None,
                    "change": None,
                }
            )
            continue
        before_n_i = previous[i].n
        comparable = before_n_i >= min_n
        figures.append(
            {
                "n": n_i,
                "distribution": list(sums.counts),
                "withheld": False,
                "withheld_reason": None,
                "mean": {"value": mean_value[i], "low": mean_low[i], "high": mean_high[i]} if n_i >= 2 else None,
                "csat": {"value": csat_value[i], "low": csat_low[i], "high": csat_high[i]},
                "nps": (
                    {
                        "label": NPS_LABEL,
                        "value": nps_value[i],
                        "centre": nps_mid[i],
                        "moe": nps_moe[i],
                        "low": nps_low[i],
                        "high": nps_high[i],
                    }
                    if recommend[i]
                    else None
                ),
                "change": {
                    "previous_n": before_n_i,
                    "withheld": not comparable,
                    "mean": (
                        {"delta": mean_delta[i], "p_value": mean_p[i], "significant": mean_p[i] < 0.05}
                        if comparable and n_i >= 2
                        else None
                    ),
                    "csat": (
                        {"delta": csat_delta[i], "p_value": csat_p[i], "significant": csat_p[i] < 0.05}
                        if comparable
                        else None
                    ),
                },
            }
        )
    return figures


def question_figures(sums: Sums, previous: Sums | None, *, recommend: bool, min_n: int) -> dict:
    """The figures of one question in one group; withheld (and flagged) below min_n answers."""
    return batch_figures([sums], [previous or Sums()], [recommend], min_n)[0]


def previous_bucket(time_dimension: str, period: str) -> str:
    step = timedelta(days=7 if time_dimension == "week" else 1)
    return (date.fromisoformat(period) - step).isoformat()


def metrics_report(
    *,
    time_dimension: str | None,
    attribute_dimension: str | None,
    min_n: int,
    current: Mapping[tuple, Mapping[FigureKey, Sums]],
    counts: Mapping[tuple, Mapping[str, int]],
    previous: Mapping[tuple, Mapping[FigureKey, Sums]],
    covers: Mapping[FigureKey, Mapping] | None = None,
) -> list[dict]:
    """One entry per (period, group): counts, response rate and each question's figures.

    ``current``/``counts`` are keyed by (period or None, group value or None); ``current`` and
    ``previous`` hold each group's sums per (template_id, question, kind), never pooled across
    templates or kinds. A figure names its ``template_id``, ``key``, ``kind``, and from ``covers``
    (``question_groups``) the ``versions`` it covers and its ``label``; only a ``recommend`` one
    has an NPS. The change of a
    time bucket is against the bucket before it (when that is in the range); without a time
    dimension it is against ``previous``, the same groups over the period just before.
    """
    groups, wanted = [], []
    for key in sorted(set(current) | set(counts), key=lambda k: (k[0] or "", k[1] or "")):
        period, value = key
        measures = counts.get(key, {})
        completed, reached = measures.get("completed", 0), measures.get("reached", 0)
        rate_withheld = reached < min_n
        if time_dimension:
            before = current.get((previous_bucket(time_dimension, period), value), {})
        else:
            before = previous.get(key, {})
        questions: list = []
        for question, sums in sorted(current.get(key, {}).items()):
            wanted.append((questions, question, sums, before.get(question, _NO_ANSWERS), question[2] == "recommend"))
        groups.append(
            {
                **({time_dimension: period} if time_dimension else {}),
                **({attribute_dimension: value or None} if attribute_dimension else {}),
                "responses": {"completed": completed, "partial": measures.get("partial", 0)},
                "contacts": {
                    measure: measures.get(measure, 0)
                    for measure in ("reached", "no_contact", "refused", "callback_requested")
                },
                "response_rate": {
                    "value": None if rate_withheld or reached == 0 else round(completed / reached, 4),
                    "withheld": rate_withheld,
                    "withheld_reason": f"fewer than {min_n} customers reached" if rate_withheld else None,
                },
                "questions": questions,
            }
        )
    figures = batch_figures([w[2] for w in wanted], [w[3] for w in wanted], [w[4] for w in wanted], min_n)
    covers = covers or {}
    for (questions, question, *_rest), figure in zip(wanted, figures, strict=True):
        template_id, key, kind = question
        cover = covers.get(question) or {}
        questions.append(
            {
                "template_id": template_id,
                "key": key,
                "kind": kind,
                "versions": list(cover.get("versions", ())),
                "label": cover.get("label", key),
                **figure,
            }
        )
    return groups


def language_key(tag: str) -> str:
    """A language tag reduced to what the templates key texts by: 'zh-TW' -> 'zh-Hant', 'fil' -> 'tl'."""
    lowered = tag.replace("_", "-").lower()
    if lowered.startswith("zh"):
        traditional = any(part in lowered for part in ("hant", "-tw", "-hk", "-mo"))
        return "zh-Hant" if traditional else "zh-Hans"
    if lowered.startswith("fil"):
        return "tl"
    return lowered.split("-")[0]


def choose_language(offered: list[str], *wanted: str | None) -> str:
    """The first of ``wanted`` (the language asked for, then the customer's) the template offers,
    else the template's first language."""
    by_key = {language_key(language): language for language in offered}
    for tag in wanted:
        if tag and tag in offered:
            return tag
        if tag and language_key(tag) in by_key:
            return by_key[language_key(tag)]
    return offered[0]
