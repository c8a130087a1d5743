"""Behaviour events in: each starts the journeys it triggers and signals the ones that wait."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from nudge.models import EventIn
from starter.api.auth import AUTH_ERRORS, NEEDS_EVENTS
from starter.api.deps import IntakeDep
from starter.api.services.intake import EventRouter

router = APIRouter(tags=["events"], responses=AUTH_ERRORS)
BATCH_LIMIT = 500
"""Events in one ``/v1/events:batch`` request."""


class EventAccepted(BaseModel):
    event_id: str
    duplicate: bool
    workflow_ids: list[str]
    touched: list[dict[str, Any]]


@router.post("/v1/events", status_code=202, response_model=EventAccepted, dependencies=NEEDS_EVENTS)
async def post_event(event: EventIn, intake: IntakeDep) -> EventAccepted:
    """Store the event once (by ``event_id``), start the journeys it triggers and signal
    the customer's running journeys that wait for it."""
    return await _accept(intake, event)


class EventBatch(BaseModel):
    events: list[EventIn] = Field(min_length=1, max_length=BATCH_LIMIT)


class EventsAccepted(BaseModel):
    results: list[EventAccepted]
    """One per event, in the request's order."""


@router.post("/v1/events:batch", status_code=202, response_model=EventsAccepted, dependencies=NEEDS_EVENTS)
async def post_events(batch: EventBatch, intake: IntakeDep) -> EventsAccepted:
    """Many events in one request (``nudge.client``'s batches), each routed as ``/v1/events``
    routes one, in order. A failure part-way answers 5xx with the events before it stored: the
    same batch sent again finds those by their ``event_id`` (``duplicate``) and routes the rest."""
    return EventsAccepted(results=[await _accept(intake, event) for event in batch.events])


async def _accept(intake: EventRouter, event: EventIn) -> EventAccepted:
    result = await intake.route(event)
    return EventAccepted(
        event_id=result.event_id,
        duplicate=result.duplicate,
        workflow_ids=result.workflow_ids,
        touched=[t.model_dump() for t in result.touched],
    )
