"""The dashboard's charts as data: what ``static/dashboard.js`` hands to Chart.js.

Each chart is ``{"type", "labels", "datasets": [{"label", "data"}], "percent"}``; the page embeds it
as JSON, the script draws it. The figures are the API's own (``FunnelRow``, ``RatePoint``,
``Verdict``), so a chart and the table beside it never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nudge.experiments import Verdict
from starter.api.services.reports import FunnelRow
from starter.api.services.series import RatePoint

FUNNEL_STAGES = ("sent", "delivered", "clicked", "converted")
RATES = (
    ("delivery", "Delivery"),
    ("click", "Click"),
    ("conversion", "Conversion"),
    ("complaint", "Complaint"),
)


def group_label(row: FunnelRow) -> str:
    """``onboarding / welcome_copy:b``: the group's values in ``group_by`` order ("all" for none)."""
    return " / ".join(value or "(none)" for value in row.group.values()) or "all"


def funnel_bars(rows: Sequence[FunnelRow]) -> dict[str, Any]:
    """One group of bars per funnel row: sent, delivered, clicked, converted."""
    return {
        "type": "bar",
        "labels": [group_label(row) for row in rows],
        "datasets": [
            {"label": stage, "data": [getattr(row, stage) for row in rows]} for stage in FUNNEL_STAGES
        ],
        "percent": False,
    }


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def rate_lines(points: Sequence[RatePoint], *, hourly: bool) -> dict[str, Any]:
    """Each rate over time, in percent; a bucket with nothing to divide by is a gap."""
    fmt = "%Y-%m-%d %H:00" if hourly else "%Y-%m-%d"
    return {
        "type": "line",
        "labels": [point.start.strftime(fmt) for point in points],
        "datasets": [
            {"label": label, "data": [_percent(getattr(point.rates, key)) for point in points]}
            for key, label in RATES
        ],
        "percent": True,
    }


def variant_rates(verdict: Verdict) -> dict[str, Any]:
    """Each variant's rate on the judged metric with its 95 % interval, in percent."""
    variants = verdict.variants
    return {
        "type": "bar",
        "labels": [v.variant for v in variants],
        "datasets": [
            {"label": f"{verdict.metric.value} rate", "data": [_percent(v.rate) for v in variants]},
            {
                "label": "95 % interval",
                "data": [[_percent(v.interval.low), _percent(v.interval.high)] for v in variants],
            },
        ],
        "percent": True,
    }
