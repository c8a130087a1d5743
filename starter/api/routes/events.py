"""Behaviour events in: each starts the journeys it triggers and signals the ones that wait."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from nudge.models import EventIn
from starter.api.auth import AUTH_ERRORS, NEEDS_EVENTS
from starter.api.deps import IntakeDep

router = APIRouter(tags=["events"], responses=AUTH_ERRORS)


class EventAccepted(BaseModel):
    event_id: str
    duplicate: bool
    workflow_ids: list[str]
    touched: list[dict[str, Any]]


@router.post("/v1/events", status_code=202, response_model=EventAccepted, dependencies=NEEDS_EVENTS)
async def post_event(event: EventIn, intake: IntakeDep) -> EventAccepted:
    """Store the event once (by ``event_id``), start the journeys it triggers and signal
    the customer's running journeys that wait for it."""
    result = await intake.route(event)
    return EventAccepted(
        event_id=result.event_id,
        duplicate=result.duplicate,
        workflow_ids=result.workflow_ids,
        touched=[t.model_dump() for t in result.touched],
    )
