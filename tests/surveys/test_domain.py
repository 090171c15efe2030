"""The survey rules and formulas against hand-computed fixtures (product brief, section 4)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from services.surveys import domain
from services.surveys.domain import InvalidAnswers, LowScoreRule, Sums, Template

TEMPLATE = Template.of(domain.DEFAULT_TEMPLATE_ID, 1, domain.DEFAULT_QUESTIONS)
FULL = {"product": 9, "service": 8, "purchase": 10, "recommend_product": 9, "recommend_store": 7}


def test_the_brief_nps_example_n200_p100_d40():
    figure = domain.nps_adjusted_wald(promoters=100, detractors=40, n=200)
    assert figure.nps == pytest.approx(30.0)
    # n' = 203, p = 100.75/203, d = 40.75/203, SE = sqrt((p + d - (p - d)^2)/n')
    assert round(figure.centre, 1) == 29.6
    assert round(figure.moe, 1) == 10.7
    assert (round(figure.low, 1), round(figure.high, 1)) == (18.8, 40.3)


def test_nps_by_hand_for_a_small_sample():
    # 10 answers: 9, 10, 10 (promoters), 7, 8 (passives), 1, 5, 6, 6, 3 (detractors)
    figure = domain.nps_adjusted_wald(promoters=3, detractors=5, n=10)
    assert figure.nps == pytest.approx(-20.0)
    p, d = 3.75 / 13, 5.75 / 13
    assert figure.centre == pytest.approx(100 * (p - d))
    assert figure.moe == pytest.approx(1.96 * math.sqrt((p + d - (p - d) ** 2) / 13) * 100)


def test_mean_t_interval_by_hand():
    # 6, 8, 10, 8: mean 8, s^2 = (264 - 32^2/4)/3 = 8/3, t(0.975, 3) = 3.182446 (table)
    interval = domain.mean_t_interval(n=4, total=32, squares=264)
    half = 3.182446 * math.sqrt((8 / 3) / 4)
    assert interval.value == 8
    assert interval.low == pytest.approx(8 - half, abs=1e-5)
    assert interval.high == pytest.approx(8 + half, abs=1e-5)
    assert (round(interval.low, 3), round(interval.high, 3)) == (5.402, 10.598)


def test_a_mean_of_one_answer_has_no_interval():
    assert domain.mean_t_interval(1, 7, 49) is None


def test_wilson_interval_by_hand():
    # 8 of 10: centre = (0.8 + 1.96^2/20)/(1 + 1.96^2/10) = 0.716738,
    # half = 1.96/1.38416 * sqrt(0.8*0.2/10 + 1.96^2/400) = 0.226581
    interval = domain.wilson_interval(8, 10)
    assert interval.value == 0.8
    assert interval.low == pytest.approx(0.490157, abs=1e-5)
    assert interval.high == pytest.approx(0.943319, abs=1e-5)


def test_wilson_interval_stays_within_0_and_1():
    assert domain.wilson_interval(0, 5).low == 0.0
    assert domain.wilson_interval(5, 5).high == 1.0


def test_csat_counts_nine_and_ten_and_nps_detractors_are_one_to_six():
    sums = Sums()
    for score in (1, 4, 6, 7, 8, 9, 10, 10):
        sums.add(score)
    assert (sums.n, sums.total, sums.squares) == (8, 55, 1 + 16 + 36 + 49 + 64 + 81 + 200)
    assert sums.top_two == sums.promoters == 3
    assert sums.detractors == 3


def test_welch_from_sums_equals_welch_on_the_raw_answers():
    now, before = [9, 8, 10, 7, 9, 9, 6], [5, 7, 6, 8, 4, 6]
    current, previous = Sums(), Sums()
    for score in now:
        current.add(score)
    for score in before:
        previous.add(score)
    change = domain.welch_change(current, previous)
    expected = stats.ttest_ind(now, before, equal_var=False)
    assert change.delta == pytest.approx(sum(now) / len(now) - sum(before) / len(before))
    assert change.p_value == pytest.approx(expected.pvalue)
    assert change.significant == (expected.pvalue < 0.05)


def test_two_proportion_z_test_by_hand():
    # 60/100 against 45/100: pooled 0.525, SE = sqrt(0.525*0.475*(2/100)) = 0.070622, z = 2.12398
    change = domain.two_proportion_change(60, 100, 45, 100)
    assert change.delta == pytest.approx(0.15)
    assert change.p_value == pytest.approx(0.03367, abs=1e-4)
    assert change.significant


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (1, True),
        (10, True),
        (0, False),
        (11, False),
        (7.5, False),
        (7.0, False),
        ("ten", False),
        ("7", False),
        (True, False),
        (None, False),
        ([7], False),
    ],
)
def test_only_whole_numbers_from_1_to_10_are_scores(value, valid):
    assert domain.valid_score(value) is valid


def test_check_answers_names_every_bad_answer():
    with pytest.raises(InvalidAnswers) as raised:
        domain.check_answers(TEMPLATE, {"product": 0, "service": 11, "purchase": 7.5, "unknown": 5}, partial=False)
    assert set(raised.value.errors) == {
        "product",
        "service",
        "purchase",
        "unknown",
        "recommend_product",
        "recommend_store",
    }
    assert "required" in raised.value.errors["recommend_store"]


def test_a_partial_response_may_leave_questions_out_but_not_break_the_scale():
    assert domain.check_answers(TEMPLATE, {"product": 3}, partial=True) == {"product": 3}
    with pytest.raises(InvalidAnswers):
        domain.check_answers(TEMPLATE, {"product": 0}, partial=True)


def test_the_low_score_rule_of_the_brief():
    rule = LowScoreRule()
    assert rule.low_questions(TEMPLATE, FULL) == []
    assert rule.low_questions(TEMPLATE, {**FULL, "recommend_store": 6}) == ["recommend_store"]
    assert rule.low_questions(TEMPLATE, {**FULL, "product": 5}) == []  # 5 is low only for recommend questions
    assert rule.low_questions(TEMPLATE, {**FULL, "product": 4, "recommend_product": 2}) == [
        "product",
        "recommend_product",
    ]


def test_the_low_score_rule_is_configurable():
    rule = LowScoreRule(recommend_at_most=8, any_at_most=2)
    assert rule.low_questions(TEMPLATE, {**FULL, "service": 3, "recommend_store": 8}) == ["recommend_store"]


@pytest.mark.parametrize(
    ("digits", "score"),
    [("7", 7), ("10", 10), ("07", 7), ("0", None), ("11", None), ("", None), (None, None), ("*", None)],
)
def test_keypad_digits(digits, score):
    assert domain.parse_keypad_digits(digits) == score


def test_a_week_is_named_by_its_monday():
    assert domain.week_of("2026-11-24") == "2026-11-23"  # a Tuesday
    assert domain.week_of("2026-11-23") == "2026-11-23"
    assert domain.week_of("2026-11-22") == "2026-11-16"  # a Sunday


@given(
    answers=st.dictionaries(st.sampled_from(["product", "service", "recommend_store"]), st.integers(1, 10)),
    agent=st.sampled_from([None, "agent-1"]),
    product=st.sampled_from([None, "Product 1"]),
)
def test_rollup_rows_are_the_rollup_deltas_as_rows(answers, agent, product):
    provenance = {"agent": agent, "product": product, "channel": "keypad"}
    kinds = {"product": "rating", "recommend_store": "recommend"}  # "service" unknown: a rating
    rows = domain.rollup_rows("t", "2026-11-26", provenance, answers, kinds)
    deltas = domain.rollup_deltas("t", "2026-11-26", provenance, answers, kinds)
    as_rows = [(*key, sums.n, sums.total, sums.squares, *sums.counts) for key, sums in deltas.items()]
    assert sorted(rows) == sorted(as_rows) and len(rows) == len(set(row[:7] for row in rows))
    assert {row[5]: row[6] for row in rows} == {key: kinds.get(key, "rating") for key in answers}


def test_question_groups_pool_versions_of_the_same_kind_and_name_the_latest_label():
    def version(number, kind, text):
        return domain.Template.of("t", number, [{"key": "q", "kind": kind, "required": True, "texts": text}])

    groups = domain.question_groups(
        [
            version(3, "rating", {"en": "Rate us again", "de": "Noch einmal"}),
            version(1, "rating", {"en": "Rate us", "de": "Bewerten"}),
            version(2, "recommend", {"en": "Recommend us?"}),
        ],
        "de",
    )
    assert groups == {
        ("t", "q", "rating"): {"versions": [1, 3], "label": "Noch einmal"},
        ("t", "q", "recommend"): {"versions": [2], "label": "Recommend us?"},
    }


def test_the_resurvey_request_id_is_derived_from_the_response():
    assert domain.resurvey_request_id("a") == domain.resurvey_request_id("a") != domain.resurvey_request_id("b")


def test_figures_under_the_minimum_n_are_withheld_and_flagged():
    sums = Sums()
    for score in [9] * 29:
        sums.add(score)
    figures = domain.question_figures(sums, None, recommend=True, min_n=30)
    assert figures["withheld"] and figures["withheld_reason"] == "fewer than 30 answers"
    assert figures["mean"] is figures["csat"] is figures["nps"] is None
    assert figures["n"] == 29
    sums.add(9)
    figures = domain.question_figures(sums, None, recommend=True, min_n=30)
    assert not figures["withheld"]
    assert figures["nps"]["value"] == 100.0 and figures["csat"]["value"] == 1.0


def sums_of(scores) -> Sums:
    sums = Sums()
    for score in scores:
        sums.add(score)
    return sums


scores = st.lists(st.integers(min_value=1, max_value=10), min_size=2, max_size=60)


@settings(max_examples=60, deadline=None)
@given(now=scores, before=scores, recommend=st.booleans())
def test_the_batched_report_figures_equal_the_one_at_a_time_formulas(now, before, recommend):
    current, previous = sums_of(now), sums_of(before)
    (figure,) = domain.batch_figures([current], [previous], [recommend], min_n=2)
    mean = domain.mean_t_interval(current.n, current.total, current.squares)
    assert figure["mean"] == pytest.approx({"value": mean.value, "low": mean.low, "high": mean.high}, abs=1e-4)
    wilson = domain.wilson_interval(current.top_two, current.n)
    assert figure["csat"] == pytest.approx({"value": wilson.value, "low": wilson.low, "high": wilson.high}, abs=1e-4)
    if recommend:
        nps = domain.nps_adjusted_wald(current.promoters, current.detractors, current.n)
        assert figure["nps"]["value"] == pytest.approx(nps.nps, abs=0.01)
        assert (figure["nps"]["centre"], figure["nps"]["moe"]) == pytest.approx((nps.centre, nps.moe), abs=0.01)
    else:
        assert figure["nps"] is None
    welch = domain.welch_change(current, previous)
    assert figure["change"]["mean"]["delta"] == pytest.approx(welch.delta, abs=1e-4)
    assert figure["change"]["mean"]["p_value"] == pytest.approx(welch.p_value, abs=1e-5)
    proportion = domain.two_proportion_change(current.top_two, current.n, previous.top_two, previous.n)
    assert figure["change"]["csat"]["p_value"] == pytest.approx(proportion.p_value, abs=1e-5)


def test_the_arrays_give_scipys_own_figures_for_each_group():
    groups = [[9, 8, 10, 7, 9, 9, 6], [5, 7, 6, 8, 4, 6], [3, 10, 10, 1]]
    sums = [sums_of(group) for group in groups]
    n, total, squares = ([getattr(s, name) for s in sums] for name in ("n", "total", "squares"))
    mean, low, high, _variance = domain.mean_t_intervals(n, total, squares)
    for i, group in enumerate(groups):
        expected = stats.t.interval(0.95, len(group) - 1, loc=np.mean(group), scale=stats.sem(group))
        assert (low[i], high[i]) == pytest.approx(expected) and mean[i] == pytest.approx(np.mean(group))
