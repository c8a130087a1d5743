"""The experiment verdict in words: the minimum sample, conclusive only when the sequential test
says so, the leader named whichever variant is the control. Sample sizes are judged against
statsmodels; the probabilities against the closed form in test_stats."""

from __future__ import annotations

import math

from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from nudge.experiments import Metric, verdict


def _looks(final: dict[str, tuple[int, int]], steps: int = 10) -> list[dict[str, tuple[int, int]]]:
    """Cumulative counts growing evenly to ``final``."""
    return [{v: (k * s // steps, n * s // steps) for v, (k, n) in final.items()} for s in range(1, steps + 1)]


def test_too_small_a_sample_says_how_many_more_each_variant_needs() -> None:
    """5 % vs 12 % over 100 each: not conclusive, and short of what statsmodels says a 20 % lift
    over 5 % needs at 80 % power, by that number minus 100."""
    counts = {"a": (5, 100), "b": (12, 100)}
    got = verdict(counts, _looks(counts), metric=Metric.CLICKED)
    effect = proportion_effectsize(0.05 * 1.2, 0.05)
    needed = math.ceil(NormalIndPower().solve_power(effect_size=abs(effect), alpha=0.05, power=0.8))
    assert abs(got.needed_per_variant - needed) <= 1  # type: ignore[operator]
    assert got.needs_more == got.needed_per_variant - 100
    assert not got.conclusive and got.leader == "b"
    assert got.summary.startswith("b leads a on clicks (")
    assert got.summary.endswith(f"not yet conclusive: needs about {got.needs_more} more per variant")


def test_a_clear_winner_over_a_large_sample_is_conclusive() -> None:
    """10 % against 13 % over 10,000 each, seen in ten looks: b beats a, conclusive."""
    counts = {"a": (1000, 10_000), "b": (1300, 10_000)}
    got = verdict(counts, _looks(counts), metric=Metric.CLICKED)
    assert got.conclusive and got.leader == "b" and got.needs_more == 0
    assert got.summary == "b beats a on clicks: 100% probability to be best, conclusive"
    [comparison] = got.comparisons
    assert (comparison.variant, comparison.against) == ("b", "a")
    assert comparison.lift is not None and math.isclose(comparison.lift, 0.3)
    assert comparison.always_valid_p < 0.05 and comparison.p_value < comparison.always_valid_p


def test_no_difference_is_never_conclusive_however_large_the_sample() -> None:
    """Equal rates over 10,000 each: the leader may be named, but the verdict says it may be chance."""
    counts = {"a": (1000, 10_000), "b": (1004, 10_000)}
    got = verdict(counts, _looks(counts), metric=Metric.CONVERTED)
    assert not got.conclusive and got.needs_more == 0
    assert got.summary.endswith("not yet conclusive: the difference may still be chance")
    assert "on conversions" in got.summary


def test_a_control_that_wins_is_named_the_winner() -> None:
    """When the control (a) is the better one, the verdict says a beats b."""
    counts = {"a": (1300, 10_000), "b": (1000, 10_000)}
    got = verdict(counts, _looks(counts), metric=Metric.CLICKED)
    assert got.conclusive and got.leader == "a"
    assert got.summary.startswith("a beats b on clicks")


def test_with_three_variants_the_leader_must_beat_each_rival() -> None:
    """b clearly beats a but not c: not conclusive, although b leads; with c as poor as a, it is."""
    close = {"a": (1000, 10_000), "b": (1300, 10_000), "c": (1290, 10_000)}
    clear = {"a": (1000, 10_000), "b": (1300, 10_000), "c": (1010, 10_000)}
    assert not verdict(close, _looks(close), metric=Metric.CLICKED).conclusive
    got = verdict(clear, _looks(clear), metric=Metric.CLICKED)
    assert got.conclusive and got.summary.startswith("b beats a, c on clicks")
    assert [(c.variant, c.against) for c in got.comparisons] == [("b", "a"), ("c", "a")]


def test_a_lone_variant_has_no_verdict() -> None:
    """One variant cannot be compared: nothing is conclusive."""
    got = verdict({"a": (3, 10)}, [], metric=Metric.CLICKED)
    assert not got.conclusive and got.summary == "needs at least two variants with exposures"


def test_a_huge_lead_over_a_huge_sample_is_conclusive_without_overflow() -> None:
    """10 % against 30 % over 20,000 each takes the mixture ratio past a float: still a verdict."""
    counts = {"a": (2000, 20_000), "b": (6000, 20_000)}
    got = verdict(counts, _looks(counts), metric=Metric.CLICKED)
    assert got.conclusive and got.comparisons[0].always_valid_p == 0.0


def test_a_high_rate_metric_with_a_large_minimum_lift_still_has_a_minimum_sample() -> None:
    """95 % delivery cannot rise 50 %: the baseline is held where the lift is still a rate."""
    counts = {"a": (950, 1000), "b": (960, 1000)}
    got = verdict(counts, _looks(counts), metric=Metric.DELIVERED, min_lift=0.5)
    assert got.needed_per_variant is not None and got.needed_per_variant > 0


def test_a_variant_nobody_got_is_shown_but_neither_leads_nor_blocks_the_verdict() -> None:
    """c (weight 0, no exposures) keeps its uniform prior out of P(best) and the minimum sample:
    b beats a, conclusive, and c is listed with nothing."""
    counts = {"a": (1000, 10_000), "b": (1300, 10_000), "c": (0, 0)}
    got = verdict(counts, _looks(counts), metric=Metric.CLICKED)
    assert got.leader == "b" and got.conclusive
    assert [(v.variant, v.exposures, v.probability_best) for v in got.variants][2] == ("c", 0, 0.0)
    assert [(c.variant, c.against) for c in got.comparisons] == [("b", "a")]
