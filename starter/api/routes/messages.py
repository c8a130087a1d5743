"""Messages and customers' stories over HTTP (a ``read`` key):

- ``GET /v1/messages?status=undelivered&route=aliyun&since=...``: a page of messages, newest first,
  numbers masked; ``next`` is the cursor of the next page.
- ``GET /v1/customers/{customer_id}/timeline``: every event, journey, gate decision, receipt, click,
  reply, consent change and conversion for one customer, in time order (``admin``: it holds their
  events' properties, replies and consent trail).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import AwareDatetime

from nudge.models import MessageStatus
from starter.api.auth import AUTH_ERRORS, NEEDS_ADMIN, NEEDS_READ, NOT_FOUND
from starter.api.deps import MessagesDep, TimelineDep
from starter.api.errors import invalid
from starter.api.services.messages import BadCursor, MessagePage, MessageQuery
from starter.api.services.timeline import TimelineEntry, UnknownCustomer

router = APIRouter(tags=["messages"], responses=AUTH_ERRORS)
Value = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.get("/v1/messages", response_model=MessagePage, dependencies=NEEDS_READ)
async def search_messages(
    messages: MessagesDep,
    status: MessageStatus | None = None,
    route: Value = None,
    journey: Value = None,
    template: Value = None,
    customer_id: Value = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Created at or after (ISO 8601, offset).")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="Created before (ISO 8601, offset).")] = None,
    before: Annotated[str | None, Query(max_length=200, description="The previous page's `next`.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> MessagePage:
    """The messages that match, newest first, `limit` at a time."""
    if since is not None and until is not None and since >= until:
        raise invalid("`since` must be before `until`", loc=("query", "since"))
    query = MessageQuery(
        status=status,
        route=route,
        journey=journey,
        template=template,
        customer_id=customer_id,
        since=since,
        until=until,
        before=before,
        limit=limit,
    )
    try:
        return await messages.search(query)
    except BadCursor as exc:
        raise invalid(str(exc), loc=("query", "before")) from exc


@router.get(
    "/v1/customers/{customer_id}/timeline",
    response_model=list[TimelineEntry],
    responses=NOT_FOUND,
    dependencies=NEEDS_ADMIN,
)
async def customer_timeline(
    timeline: TimelineDep, customer_id: Annotated[str, Path(min_length=1, max_length=200)]
) -> list[TimelineEntry]:
    """One customer's story, oldest first (at most 200 entries of each kind, the latest)."""
    try:
        return await timeline.of(customer_id)
    except UnknownCustomer as exc:
        raise HTTPException(404, detail=str(exc)) from exc
