"""The statistics behind an experiment's verdict: pure functions, no I/O, standard library only.

- ``wilson``: a rate's confidence interval (Wilson score), sound at 0 and at small samples.
- ``two_proportions``: the classic two-proportion z-test, with the difference and the relative lift
  each with its interval; valid only when the sample size was fixed in advance.
- ``probability_best``: with Beta(1, 1) priors, each variant's posterior probability of having the
  highest rate. Also the bandit's allocation: Thompson sampling sends each customer to a variant
  with exactly this probability.
- ``always_valid_p``: the mixture sequential probability ratio test (mSPRT, Johari et al., "Always
  Valid Inference", 2017): a p-value that may be read after every batch without inflating false
  winners, because it is the running minimum of 1 / the mixture likelihood ratio, a martingale
  under no difference (Ville's inequality bounds its crossing of 1/alpha by alpha).
- ``sample_size``: how many customers per variant a fixed-sample test needs to see a lift.

The tests check each against scipy and statsmodels, which Nudge itself does not depend on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()
GRID_POINTS = 4001
"""Points of the grid ``probability_best`` integrates on (odd: Simpson's rule)."""


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class TwoProportions:
    """Variant b against a: ``difference`` is ``rate_b - rate_a``, ``lift`` is ``rate_b / rate_a - 1``."""

    z: float
    p_value: float
    difference: float
    difference_interval: Interval
    lift: float | None
    """None when a's rate is 0 (a lift over nothing)."""
    lift_interval: Interval | None
    """None when either rate is 0 (the log of the ratio is undefined)."""


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    return _NORMAL.inv_cdf(0.5 + confidence / 2)


def _counts(successes: int, trials: int) -> None:
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, not {successes} of {trials}")


def wilson(successes: int, trials: int, *, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of ``successes / trials``; (0, 1) when nothing was tried."""
    _counts(successes, trials)
    if trials == 0:
        return Interval(0.0, 1.0)
    z = _z(confidence)
    rate = successes / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def two_proportions(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, *, confidence: float = 0.95
) -> TwoProportions:
    """The two-sided z-test with a pooled variance; the intervals are Wald's (unpooled), the
    lift's on the log of the ratio (Katz)."""
    _counts(successes_a, trials_a)
    _counts(successes_b, trials_b)
    if trials_a == 0 or trials_b == 0:
        raise ValueError("both variants need at least one trial")
    z_crit = _z(confidence)
    rate_a, rate_b = successes_a / trials_a, successes_b / trials_b
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    difference = rate_b - rate_a
    z = difference / pooled_se if pooled_se > 0 else 0.0
    p_value = 2 * (1 - _NORMAL.cdf(abs(z)))
    se = math.sqrt(rate_a * (1 - rate_a) / trials_a + rate_b * (1 - rate_b) / trials_b)
    lift = rate_b / rate_a - 1 if rate_a > 0 else None
    lift_interval = None
    if successes_a > 0 and successes_b > 0:
        log_se = math.sqrt(1 / successes_a - 1 / trials_a + 1 / successes_b - 1 / trials_b)
        log_ratio = math.log(rate_b / rate_a)
        lift_interval = Interval(
            math.exp(log_ratio - z_crit * log_se) - 1, math.exp(log_ratio + z_crit * log_se) - 1
        )
    return TwoProportions(
        z=z,
        p_value=p_value,
        difference=difference,
        difference_interval=Interval(difference - z_crit * se, difference + z_crit * se),
        lift=lift,
        lift_interval=lift_interval,
    )


def probability_best(counts: Mapping[str, tuple[int, int]]) -> dict[str, float]:
    """Each variant's probability of the highest rate, from ``{variant: (successes, trials)}``.

    With Beta(1 + successes, 1 + failures) posteriors, P(i is best) is the integral of i's density
    times every other variant's distribution function. It is integrated numerically on a grid that
    covers where the posteriors have mass (Simpson's rule, the distribution functions accumulated on
    the same grid), so it is deterministic, unlike sampling.
    """
    if not counts:
        return {}
    for successes, trials in counts.values():
        _counts(successes, trials)
    if len(counts) == 1:
        return dict.fromkeys(counts, 1.0)
    params = {name: (1.0 + k, 1.0 + n - k) for name, (k, n) in counts.items()}
    low, high = 1.0, 0.0
    for a, b in params.values():
        mean, sd = a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        low, high = min(low, mean - 12 * sd), max(high, mean + 12 * sd)
    low, high = max(0.0, low), min(1.0, high)
    step = (high - low) / (GRID_POINTS - 1)
    grid = [low + i * step for i in range(GRID_POINTS)]
    densities = {name: [_beta_pdf(x, a, b) for x in grid] for name, (a, b) in params.items()}
    cdfs = {name: _accumulate(density, step) for name, density in densities.items()}
    weights = [1.0 if i in (0, GRID_POINTS - 1) else (4.0 if i % 2 else 2.0) for i in range(GRID_POINTS)]
    best: dict[str, float] = {}
    for name, density in densities.items():
        others = [cdfs[other] for other in densities if other != name]
        total = 0.0
        for i, x_density in enumerate(density):
            if x_density:
                product = x_density
                for cdf in others:
                    product *= cdf[i]
                total += weights[i] * product
        best[name] = total * step / 3
    norm = sum(best.values()) or 1.0
    return {name: value / norm for name, value in best.items()}


def _beta_pdf(x: float, a: float, b: float) -> float:
    if x <= 0.0 or x >= 1.0:
        # The density at the ends: finite only for a parameter of exactly 1.
        if (x <= 0.0 and a == 1.0) or (x >= 1.0 and b == 1.0):
            return math.exp(-_log_beta(a, b))
        return 0.0
    return math.exp((a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - _log_beta(a, b))


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _accumulate(density: list[float], step: float) -> list[float]:
    """The distribution function on the grid (trapezoids), scaled so that it ends at exactly 1."""
    running, out = 0.0, [0.0]
    for left, right in zip(density, density[1:], strict=False):
        running += (left + right) * step / 2
        out.append(running)
    total = out[-1] or 1.0
    return [value / total for value in out]


def log_mixture_likelihood_ratio(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, *, tau: float
) -> float:
    """The log of the mSPRT statistic for ``rate_b - rate_a``: the likelihood of the observed
    difference under a normal mixture of effects N(0, tau^2), over its likelihood under no
    difference (normal approximation with the plug-in variance). In logs, because a clear lead
    over a large sample takes the ratio itself past a float's range."""
    if tau <= 0:
        raise ValueError("tau must be positive")
    if min(trials_a, trials_b) == 0:
        return 0.0
    rate_a, rate_b = successes_a / trials_a, successes_b / trials_b
    variance = rate_a * (1 - rate_a) / trials_a + rate_b * (1 - rate_b) / trials_b
    if variance <= 0:
        return 0.0
    tau2 = tau * tau
    difference = rate_b - rate_a
    return 0.5 * math.log(variance / (variance + tau2)) + difference * difference * tau2 / (
        2 * variance * (variance + tau2)
    )


def mixture_likelihood_ratio(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, *, tau: float
) -> float:
    """``exp`` of ``log_mixture_likelihood_ratio`` (``inf`` past a float's range)."""
    log_ratio = log_mixture_likelihood_ratio(successes_a, trials_a, successes_b, trials_b, tau=tau)
    return math.inf if log_ratio > 700 else math.exp(log_ratio)


def always_valid_p(looks: Iterable[tuple[int, int, int, int]], *, tau: float) -> float:
    """The always-valid p-value after ``looks``: cumulative ``(successes_a, trials_a, successes_b,
    trials_b)`` in time order (each hour of an experiment, say). Reading it at any moment, and
    stopping the first time it falls below alpha, keeps the false-winner rate at alpha."""
    p = 1.0
    for look in looks:
        p = min(p, math.exp(-max(0.0, log_mixture_likelihood_ratio(*look, tau=tau))))
    return p


def sample_size(baseline: float, relative_lift: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Customers per variant for a two-sided test at ``alpha`` to see a ``relative_lift`` over
    ``baseline`` with ``power`` (Cohen's arcsine effect size h)."""
    if not 0 < baseline < 1:
        raise ValueError(f"baseline must be between 0 and 1, not {baseline}")
    target = baseline * (1 + relative_lift)
    if relative_lift == 0 or not 0 < target < 1:
        raise ValueError(f"a {relative_lift:+.0%} lift on {baseline:.2%} is not a rate")
    h = abs(2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline)))
    z = _NORMAL.inv_cdf(1 - alpha / 2) + _NORMAL.inv_cdf(power)
    # Each arm's 2·asin(sqrt(rate)) has variance 1/n, so their difference has 2/n.
    return math.ceil(2 * (z / h) ** 2)
