"""nudge.stats against reference values from scipy and statsmodels (used only here), and the
sequential test's promise checked by simulation: peeking does not inflate false winners."""

from __future__ import annotations

import math
import random

import pytest
from scipy import integrate, special
from scipy import stats as scipy_stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
)

from nudge import stats

CASES = [(0, 10), (1, 10), (5, 10), (10, 10), (37, 1200), (412, 5000), (3, 17)]


@pytest.mark.parametrize(("k", "n"), CASES)
def test_wilson_matches_statsmodels(k: int, n: int) -> None:
    """The Wilson interval equals statsmodels' at 95 % and 99 %, including 0 and n successes."""
    for confidence in (0.95, 0.99):
        low, high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
        got = stats.wilson(k, n, confidence=confidence)
        assert got.low == pytest.approx(low, abs=1e-12)
        assert got.high == pytest.approx(high, abs=1e-12)


def test_wilson_refuses_impossible_counts() -> None:
    """More successes than trials, or negative counts, raise rather than report nonsense."""
    for k, n in ((11, 10), (-1, 10), (0, -1)):
        with pytest.raises(ValueError, match="successes"):
            stats.wilson(k, n)
    assert stats.wilson(0, 0) == stats.Interval(0.0, 1.0)


PAIRS = [(120, 1000, 150, 1000), (37, 1200, 61, 1180), (5, 40, 11, 38), (400, 5000, 380, 5100)]


@pytest.mark.parametrize(("ka", "na", "kb", "nb"), PAIRS)
def test_two_proportions_match_statsmodels(ka: int, na: int, kb: int, nb: int) -> None:
    """z, p-value, the difference's Wald interval and the ratio's log interval equal statsmodels'."""
    z, p = proportions_ztest([kb, ka], [nb, na])
    diff_low, diff_high = confint_proportions_2indep(kb, nb, ka, na, compare="diff", method="wald")
    ratio_low, ratio_high = confint_proportions_2indep(kb, nb, ka, na, compare="ratio", method="log")
    got = stats.two_proportions(ka, na, kb, nb)
    assert got.z == pytest.approx(z, rel=1e-9)
    assert got.p_value == pytest.approx(p, rel=1e-6, abs=1e-12)
    assert got.difference == pytest.approx(kb / nb - ka / na, rel=1e-12)
    assert got.difference_interval.low == pytest.approx(diff_low, rel=1e-9)
    assert got.difference_interval.high == pytest.approx(diff_high, rel=1e-9)
    assert got.lift == pytest.approx((kb / nb) / (ka / na) - 1, rel=1e-12)
    assert got.lift_interval is not None
    assert got.lift_interval.low == pytest.approx(ratio_low - 1, rel=1e-9, abs=1e-12)
    assert got.lift_interval.high == pytest.approx(ratio_high - 1, rel=1e-9)


def test_two_proportions_without_successes_has_no_lift() -> None:
    """A control with no successes gives no lift, and none of either gives no lift interval."""
    got = stats.two_proportions(0, 100, 4, 100)
    assert got.lift is None and got.lift_interval is None
    assert stats.two_proportions(0, 100, 0, 100).p_value == 1.0
    with pytest.raises(ValueError, match="at least one trial"):
        stats.two_proportions(0, 0, 1, 10)


def _exact_b_beats_a(ka: int, na: int, kb: int, nb: int) -> float:
    """Evan Miller's closed form for P(rate_b > rate_a) under Beta(1, 1) priors."""
    alpha_a, beta_a, alpha_b, beta_b = 1 + ka, 1 + na - ka, 1 + kb, 1 + nb - kb
    total = 0.0
    for i in range(alpha_b):
        total += math.exp(
            special.betaln(alpha_a + i, beta_a + beta_b)
            - math.log(beta_b + i)
            - special.betaln(1 + i, beta_b)
            - special.betaln(alpha_a, beta_a)
        )
    return total


@pytest.mark.parametrize(("ka", "na", "kb", "nb"), [*PAIRS, (0, 5, 1, 5), (300, 300, 299, 300)])
def test_probability_best_of_two_matches_the_closed_form(ka: int, na: int, kb: int, nb: int) -> None:
    """For two variants, P(best) equals the exact sum of Beta functions to three decimals."""
    got = stats.probability_best({"a": (ka, na), "b": (kb, nb)})
    exact = _exact_b_beats_a(ka, na, kb, nb)
    assert got["b"] == pytest.approx(exact, abs=1e-3)
    assert got["a"] + got["b"] == pytest.approx(1.0)


def test_probability_best_of_three_matches_scipy_quadrature() -> None:
    """For three variants, P(best) equals scipy's quadrature of pdf_i times the others' cdfs."""
    counts = {"a": (40, 1000), "b": (52, 1000), "c": (47, 990)}
    got = stats.probability_best(counts)
    posteriors = {name: scipy_stats.beta(1 + k, 1 + n - k) for name, (k, n) in counts.items()}
    for name, posterior in posteriors.items():
        others = [p for other, p in posteriors.items() if other != name]

        def integrand(x: float, posterior=posterior, others=others) -> float:
            return posterior.pdf(x) * math.prod(o.cdf(x) for o in others)

        reference, _ = integrate.quad(integrand, 0, 1, points=[0.04, 0.05], limit=200)
        assert got[name] == pytest.approx(reference, abs=2e-3), name


def test_probability_best_of_identical_variants_is_even_and_of_one_is_certain() -> None:
    """Identical counts split the probability evenly; a lone variant is best for sure."""
    got = stats.probability_best({"a": (10, 100), "b": (10, 100), "c": (10, 100)})
    assert all(value == pytest.approx(1 / 3, abs=1e-3) for value in got.values())
    assert stats.probability_best({"a": (0, 0)}) == {"a": 1.0}


def test_mixture_ratio_matches_numerical_integration_of_its_definition() -> None:
    """The closed form equals the integral over effects theta ~ N(0, tau^2) of the normal
    likelihood ratio phi(d; theta, V) / phi(d; 0, V), computed by scipy."""
    ka, na, kb, nb, tau = 100, 1000, 130, 1000, 0.02
    ra, rb = ka / na, kb / nb
    variance = ra * (1 - ra) / na + rb * (1 - rb) / nb
    d = rb - ra

    def integrand(theta: float) -> float:
        ratio = scipy_stats.norm.pdf(d, theta, math.sqrt(variance)) / scipy_stats.norm.pdf(
            d, 0, math.sqrt(variance)
        )
        return ratio * scipy_stats.norm.pdf(theta, 0, tau)

    reference, _ = integrate.quad(integrand, -10 * tau, 10 * tau, limit=200)
    assert stats.mixture_likelihood_ratio(ka, na, kb, nb, tau=tau) == pytest.approx(reference, rel=1e-6)


def _peeking(
    rng: random.Random, *, rate_a: float, rate_b: float, looks: int, batch: int
) -> list[tuple[int, int, int, int]]:
    ka = kb = 0
    out = []
    for look in range(1, looks + 1):
        ka += sum(rng.random() < rate_a for _ in range(batch))
        kb += sum(rng.random() < rate_b for _ in range(batch))
        out.append((ka, look * batch, kb, look * batch))
    return out


def test_peeking_at_the_sequential_test_keeps_false_winners_rare_where_the_z_test_does_not() -> None:
    """A/A experiments read after every batch: stopping at the first p < 0.05 finds a false winner
    in at most ~5 % of runs with the always-valid p-value, and far more often with the z-test."""
    rng = random.Random(20261201)
    runs, sequential_wins, naive_wins = 300, 0, 0
    for _ in range(runs):
        looks = _peeking(rng, rate_a=0.1, rate_b=0.1, looks=40, batch=50)
        if stats.always_valid_p(looks, tau=0.02) < 0.05:
            sequential_wins += 1
        if any(stats.two_proportions(*look).p_value < 0.05 for look in looks):
            naive_wins += 1
    assert sequential_wins / runs <= 0.06
    assert naive_wins / runs >= 0.15  # the inflation the sequential test exists to prevent


def test_sequential_test_finds_a_real_difference() -> None:
    """With a 10 % against 20 % click rate, the always-valid p-value falls below 0.05."""
    looks = _peeking(random.Random(7), rate_a=0.1, rate_b=0.2, looks=40, batch=50)
    assert stats.always_valid_p(looks, tau=0.02) < 0.05
    assert stats.always_valid_p([], tau=0.02) == 1.0


@pytest.mark.parametrize(("baseline", "lift"), [(0.05, 0.2), (0.1, 0.1), (0.3, -0.2), (0.02, 0.5)])
def test_sample_size_matches_statsmodels_power(baseline: float, lift: float) -> None:
    """Per-variant sample sizes equal statsmodels' NormalIndPower on Cohen's h, rounded up."""
    effect = proportion_effectsize(baseline * (1 + lift), baseline)
    reference = NormalIndPower().solve_power(effect_size=abs(effect), alpha=0.05, power=0.8, ratio=1.0)
    assert stats.sample_size(baseline, lift) == pytest.approx(math.ceil(reference), abs=1)
    with pytest.raises(ValueError, match="not a rate"):
        stats.sample_size(0.6, 1.0)
