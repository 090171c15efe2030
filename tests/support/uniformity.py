"""A chi-square test of a random pick that is drawn unseeded, so that no fixed seed can make a
biased picker pass, and yet does not fail by chance often enough to redden CI.

One sample below ``ALPHA`` happens once in a thousand runs of a uniform pick; with five such tests
in a suite run, that is a red run in every two hundred. So a sample below ``ALPHA`` is drawn once
more, afresh: a uniform pick fails both once in a million runs, while a biased one (the tests show
the naive pick scoring p < 1e-6) fails both every time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from scipy.stats import chisquare

ALPHA = 0.001


def assert_uniform(draw_counts: Callable[[], Sequence[int]]) -> None:
    """``draw_counts()`` draws a fresh sample and returns its count per cell."""
    first = chisquare(draw_counts()).pvalue
    if first > ALPHA:
        return
    second = chisquare(draw_counts()).pvalue
    assert second > ALPHA, f"not uniform: p = {first:.2g}, and {second:.2g} on a fresh sample"
