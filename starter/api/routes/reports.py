"""Reports over HTTP (a ``read`` key):

- ``GET /v1/reports/funnel?journey=...&group_by=variant&group_by=route``: sent, delivered,
  clicked, converted, opted out, complained, blocked by reason, cost and revenue, per group.
- ``GET /v1/reports/rates?bucket=hour``: delivery, click, conversion and complaint rates per hour
  or day, for the same filters.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from starter.api.auth import AUTH_ERRORS, NEEDS_READ
from starter.api.deps import ReportsDep, SeriesDep
from starter.api.errors import invalid
from starter.api.services.reports import Dimension, FunnelFilter, FunnelRow
from starter.api.services.series import Bucket, RatePoint

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=AUTH_ERRORS, dependencies=NEEDS_READ)
Value = Annotated[str | None, Query(min_length=1, max_length=200)]
Since = Annotated[AwareDatetime | None, Query(description="ISO 8601 with an offset.")]
Until = Annotated[AwareDatetime | None, Query(description="ISO 8601 with an offset.")]


def message_filter(
    journey: Value = None,
    step: Value = None,
    template: Value = None,
    variant: Annotated[
        str | None, Query(min_length=1, max_length=200, description="`experiment:variant`")
    ] = None,
    route: Value = None,
    signature: Value = None,
    broadcast: Annotated[
        str | None, Query(min_length=1, max_length=100, description="A broadcast's id.")
    ] = None,
    category: Annotated[str | None, Query(pattern="^(marketing|transactional)$")] = None,
    since: Since = None,
    until: Until = None,
) -> FunnelFilter:
    """The messages a report covers: the query's filters, checked."""
    if since is not None and until is not None and since >= until:
        raise invalid("`since` must be before `until`", loc=("query", "since"))
    return FunnelFilter(
        journey=journey,
        step=step,
        template=template,
        variant=variant,
        route=route,
        signature=signature,
        broadcast=broadcast,
        category=category,
        since=since,
        until=until,
    )


Filters = Annotated[FunnelFilter, Depends(message_filter)]


@router.get("/funnel", response_model=list[FunnelRow])
async def funnel(
    reports: ReportsDep,
    filters: Filters,
    group_by: Annotated[list[Dimension] | None, Query(description="Repeat for several dimensions.")] = None,
) -> list[FunnelRow]:
    """The funnel of the messages the filters select, one row per group (one row in all without
    `group_by`), largest first. Rates are over the messages sent; the delivery rate over those
    whose receipt came back."""
    return await reports.funnel(filters, group_by or ())


@router.get("/rates", response_model=list[RatePoint])
async def rates(
    series: SeriesDep,
    filters: Filters,
    bucket: Annotated[Bucket, Query(description="One point per hour or per day.")] = Bucket.HOUR,
) -> list[RatePoint]:
    """Delivery, click, conversion and complaint rates over time: the messages the gate decided on
    in each hour (or day) that has any, oldest first. The points add up to the funnel's figures."""
    return await series.rates(filters, bucket)
