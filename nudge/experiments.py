"""Experiments: the ``assign_variant`` contract a journey's ``split`` calls, and the verdict a
marketer reads, in plain words, from each variant's exposures and successes (pure: no I/O).

The verdict is conclusive only when both hold:
- every variant has the minimum sample a fixed-sample test would need to see a ``min_lift``
  relative lift over the control's rate (80 % power at alpha): until then it says "needs about N
  more per variant";
- the leader's always-valid p-value (mSPRT) against every other variant is below alpha divided by
  the number of comparisons, so that checking the dashboard every hour does not make false winners.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

from pydantic import BaseModel, Field

from nudge import stats


class Metric(StrEnum):
    DELIVERED = "delivered"
    CLICKED = "clicked"
    CONVERTED = "converted"

    @property
    def noun(self) -> str:
        return {"delivered": "deliveries", "clicked": "clicks", "converted": "conversions"}[self.value]


class VariantRequest(BaseModel):
    """Input of the ``assign_variant`` activity."""

    experiment: str
    customer_id: str
    workflow_id: str
    journey: str
    weights: dict[str, float]
    bandit: bool = False
    """Thompson sampling: allocate by each variant's probability of being best on ``metric``."""
    metric: Metric = Metric.CLICKED


class VariantChoice(BaseModel):
    """Result of ``assign_variant``: the variant, why, and the allocation in force."""

    variant: str
    reason: str
    """``weights``, ``bandit``, ``winner`` (a concluded experiment) or ``assigned`` (placed before)."""
    allocation: dict[str, float] = Field(default_factory=dict)


class Interval(BaseModel):
    low: float
    high: float


class VariantFigures(BaseModel):
    variant: str
    exposures: int
    successes: int
    rate: float | None
    interval: Interval = Field(description="The rate's 95 % Wilson interval.")
    probability_best: float = Field(
        description="Posterior probability of the highest rate (Beta(1, 1) prior)."
    )


class Comparison(BaseModel):
    """``variant`` against ``against`` (the control, or the leader's rival)."""

    variant: str
    against: str
    difference: float
    difference_interval: Interval
    lift: float | None
    lift_interval: Interval | None
    p_value: float = Field(
        description="Fixed-sample two-proportion z-test (valid only read once, at the end)."
    )
    always_valid_p: float = Field(description="Sequential mSPRT p-value: valid however often it is read.")


class Verdict(BaseModel):
    metric: Metric
    variants: list[VariantFigures]
    comparisons: list[Comparison]
    leader: str | None
    needed_per_variant: int | None = Field(description="The minimum sample per variant before any verdict.")
    needs_more: int = Field(description="About how many more exposures the smallest variant needs.")
    conclusive: bool
    summary: str


Counts = Mapping[str, tuple[int, int]]
"""Per variant: (successes, exposures)."""


TAU = {Metric.DELIVERED: 0.02, Metric.CLICKED: 0.02, Metric.CONVERTED: 0.01}
"""The mSPRT mixture's spread per metric: the size of difference (absolute) it is tuned to find.
Fixed in advance, never taken from the data, which would void the test's guarantee."""


def verdict(
    counts: Counts,
    looks: Sequence[Counts],
    *,
    metric: Metric,
    control: str | None = None,
    alpha: float = 0.05,
    min_lift: float = 0.2,
    tau: float | None = None,
) -> Verdict:
    """The verdict on ``counts`` (now), with ``looks`` the cumulative counts at each earlier moment
    (hourly, say) in time order, the last equal to ``counts``. Only variants with exposures take
    part (a variant nobody got yet, or a bandit's starved one, is shown but not judged).

    Args:
        control: The variant the others are compared with (default: the first live one by name).
        alpha: The false-winner rate the sequential test holds.
        min_lift: The smallest relative lift worth detecting (sets the minimum sample).
        tau: The mSPRT mixture's spread (default: ``TAU`` for the metric).
    """
    names = sorted(counts)
    live = [name for name in names if counts[name][1] > 0]
    control = control if control in live else (live[0] if live else None)
    best = stats.probability_best({name: counts[name] for name in live})
    figures = [_figures(name, *counts[name], best.get(name, 0.0)) for name in names]
    if control is None or len(live) < 2:
        return Verdict(
            metric=metric,
            variants=figures,
            comparisons=[],
            leader=None,
            needed_per_variant=None,
            needs_more=0,
            conclusive=False,
            summary="needs at least two variants with exposures",
        )
    k_c, n_c = counts[control]
    pooled = sum(counts[n][0] for n in live) / sum(counts[n][1] for n in live)
    baseline = k_c / n_c if k_c else pooled
    # Kept where a lift of min_lift is still a rate (a 95 % delivery rate cannot rise 20 %).
    needed = stats.sample_size(min(max(baseline, 0.01), 0.99 / (1 + min_lift)), min_lift, alpha=alpha)
    needs_more = max(0, needed - min(counts[n][1] for n in live))
    spread = tau or TAU[metric]
    leader = max(live, key=lambda name: (best[name], name == control))
    rivals = [name for name in live if name != leader]
    comparisons = [_compare(control, name, counts, looks, spread) for name in live if name != control]
    # The leader against each rival, every comparison at alpha / their number (Bonferroni).
    duels = [_compare(rival, leader, counts, looks, spread) for rival in rivals]
    significant = all(d.always_valid_p < alpha / len(rivals) for d in duels)
    ahead = all(d.difference > 0 for d in duels)
    conclusive = needs_more == 0 and significant and ahead
    return Verdict(
        metric=metric,
        variants=figures,
        comparisons=comparisons,
        leader=leader,
        needed_per_variant=needed,
        needs_more=needs_more,
        conclusive=conclusive,
        summary=_summary(leader, rivals, best[leader], metric, conclusive, needs_more, significant),
    )


def _figures(name: str, successes: int, exposures: int, best: float) -> VariantFigures:
    interval = stats.wilson(successes, exposures)
    return VariantFigures(
        variant=name,
        exposures=exposures,
        successes=successes,
        rate=successes / exposures if exposures else None,
        interval=Interval(low=interval.low, high=interval.high),
        probability_best=best,
    )


def _compare(against: str, variant: str, counts: Counts, looks: Sequence[Counts], tau: float) -> Comparison:
    k_a, n_a = counts[against]
    k_b, n_b = counts[variant]
    sequence = [(*look.get(against, (0, 0)), *look.get(variant, (0, 0))) for look in looks]
    always_valid = stats.always_valid_p(sequence, tau=tau)
    if n_a == 0 or n_b == 0:
        nothing = Interval(low=-1.0, high=1.0)
        return Comparison(
            variant=variant,
            against=against,
            difference=0.0,
            difference_interval=nothing,
            lift=None,
            lift_interval=None,
            p_value=1.0,
            always_valid_p=always_valid,
        )
    test = stats.two_proportions(k_a, n_a, k_b, n_b)
    lift_interval = test.lift_interval
    return Comparison(
        variant=variant,
        against=against,
        difference=test.difference,
        difference_interval=Interval(low=test.difference_interval.low, high=test.difference_interval.high),
        lift=test.lift,
        lift_interval=None
        if lift_interval is None
        else Interval(low=lift_interval.low, high=lift_interval.high),
        p_value=test.p_value,
        always_valid_p=always_valid,
    )


def _summary(
    leader: str,
    rivals: list[str],
    best: float,
    metric: Metric,
    conclusive: bool,
    needs_more: int,
    significant: bool,
) -> str:
    others = ", ".join(rivals)
    lead = f"{leader} leads {others} on {metric.noun} ({best:.0%} probability to be best)"
    if conclusive:
        return f"{leader} beats {others} on {metric.noun}: {best:.0%} probability to be best, conclusive"
    if needs_more:
        return f"{lead}; not yet conclusive: needs about {needs_more} more per variant"
    if not significant:
        return f"{lead}; not yet conclusive: the difference may still be chance"
    return f"{lead}; not conclusive"
