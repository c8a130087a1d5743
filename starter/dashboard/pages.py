"""The dashboard's read-only pages: overview, funnel, rates, message search and a customer's timeline.
Each shows the same figures the API answers, from the same services."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from nudge.models import MessageStatus
from nudge.store import utcnow
from starter.api.deps import MessagesDep, PausesDep, ReportsDep, SeriesDep, ServicesDep, TimelineDep
from starter.api.services.messages import BadCursor, MessageQuery
from starter.api.services.reports import Dimension, FunnelFilter
from starter.api.services.series import Bucket
from starter.api.services.timeline import UnknownCustomer
from starter.dashboard import charts
from starter.dashboard.web import BadFilter, ViewerDep, blank_to_none, parse_time, render

router = APIRouter(prefix="/dashboard", include_in_schema=False)
Text = Annotated[str | None, Query(max_length=200)]


def workflow_url(services: ServicesDep, workflow_id: str) -> str:
    settings = services.settings
    return (
        f"{settings.effective_temporal_ui_url}/namespaces/{quote(settings.temporal_namespace, safe='')}"
        f"/workflows/{quote(workflow_id, safe='')}"
    )


@router.get("", response_class=HTMLResponse)
async def overview(
    request: Request,
    viewer: ViewerDep,
    reports: ReportsDep,
    series: SeriesDep,
    pauses: PausesDep,
    bucket: Bucket = Bucket.HOUR,
    days: Annotated[int, Query(ge=1, le=90)] = 7,
) -> HTMLResponse:
    """Totals, the funnel per journey, the rates over the last ``days`` and what is paused."""
    totals = await reports.funnel(FunnelFilter())
    journeys = await reports.funnel(FunnelFilter(), [Dimension.JOURNEY])
    points = await series.rates(FunnelFilter(since=utcnow() - timedelta(days=days)), bucket)
    return render(
        request,
        "overview.html",
        viewer=viewer,
        page="overview",
        total=totals[0] if totals else None,
        journeys=journeys,
        funnel_chart=charts.funnel_bars(journeys),
        rates_chart=charts.rate_lines(points, hourly=bucket is Bucket.HOUR),
        points=points,
        bucket=bucket.value,
        days=days,
        paused=await pauses.current(),
        label=charts.group_label,
    )


@router.get("/funnel", response_class=HTMLResponse)
async def funnel(
    request: Request,
    viewer: ViewerDep,
    reports: ReportsDep,
    group_by: Annotated[list[Dimension] | None, Query()] = None,
    journey: Text = None,
    template: Text = None,
    variant: Text = None,
    route: Text = None,
    signature: Text = None,
    since: Text = None,
    until: Text = None,
) -> HTMLResponse:
    """The funnel per group (journey and variant unless the form says otherwise), as bars and a table."""
    dims = list(dict.fromkeys(group_by or [Dimension.JOURNEY, Dimension.VARIANT]))
    form = {
        "journey": blank_to_none(journey),
        "template": blank_to_none(template),
        "variant": blank_to_none(variant),
        "route": blank_to_none(route),
        "signature": blank_to_none(signature),
    }
    error, rows = None, []
    try:
        filters = FunnelFilter(**form, since=parse_time(since, "since"), until=parse_time(until, "until"))
        if filters.since and filters.until and filters.since >= filters.until:
            raise BadFilter("since must be before until")
        rows = await reports.funnel(filters, dims)
    except BadFilter as exc:
        error = str(exc)
    return render(
        request,
        "funnel.html",
        status=400 if error else 200,
        viewer=viewer,
        page="funnel",
        error=error,
        rows=rows,
        dims=[d.value for d in dims],
        all_dims=[d.value for d in Dimension],
        form={**form, "since": since or "", "until": until or ""},
        funnel_chart=charts.funnel_bars(rows),
        label=charts.group_label,
    )


@router.get("/messages", response_class=HTMLResponse)
async def messages(
    request: Request,
    viewer: ViewerDep,
    search: MessagesDep,
    status: Text = None,
    route: Text = None,
    journey: Text = None,
    customer_id: Text = None,
    since: Text = None,
    until: Text = None,
    before: Text = None,
) -> HTMLResponse:
    """Messages by status, route, journey and time, newest first, 50 a page."""
    form = {
        "status": blank_to_none(status),
        "route": blank_to_none(route),
        "journey": blank_to_none(journey),
        "customer_id": blank_to_none(customer_id),
        "since": since or "",
        "until": until or "",
    }
    error, page, next_url = None, None, None
    try:
        if form["status"] is not None and form["status"] not in set(MessageStatus):
            raise BadFilter(f"status: one of {', '.join(MessageStatus)}")
        query = MessageQuery(
            status=MessageStatus(form["status"]) if form["status"] else None,
            route=form["route"],
            journey=form["journey"],
            customer_id=form["customer_id"],
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            before=blank_to_none(before),
        )
        page = await search.search(query)
        if page.next:
            next_url = "?" + urlencode({**{k: v for k, v in form.items() if v}, "before": page.next})
    except (BadFilter, BadCursor) as exc:
        error = str(exc)
    return render(
        request,
        "messages.html",
        status=400 if error else 200,
        viewer=viewer,
        page="messages",
        error=error,
        form=form,
        statuses=list(MessageStatus),
        results=page.messages if page else [],
        next_url=next_url,
    )


@router.get("/customers", response_class=HTMLResponse)
async def customer(
    request: Request,
    viewer: ViewerDep,
    timeline: TimelineDep,
    services: ServicesDep,
    customer_id: Text = None,
) -> HTMLResponse:
    """One customer's timeline, each message linked to its journey in the Temporal UI."""
    wanted = blank_to_none(customer_id)
    entries, error = [], None
    if not viewer.admin:
        error = "A customer's timeline holds their personal data: it needs an admin key."
    elif wanted is not None:
        try:
            entries = await timeline.of(wanted)
        except UnknownCustomer as exc:
            error = str(exc)
    return render(
        request,
        "customer.html",
        status=(404 if viewer.admin else 403) if error else 200,
        viewer=viewer,
        page="customers",
        customer_id=wanted or "",
        entries=entries,
        error=error,
        workflow_url=lambda workflow_id: workflow_url(services, workflow_id),
    )
