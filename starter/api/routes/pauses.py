"""Pauses over HTTP: what is paused and why, pause a scope by hand, resume one, and the audit.

- ``GET /v1/pauses``: the pauses in effect, with the figures that opened an automatic one
- ``POST /v1/pauses`` ``{"scope": "template", "value": "cart_reminder", "reason": "..."}``
- ``DELETE /v1/pauses/{scope}/{value}?reason=...``: resume (404 when it is not paused)
- ``GET /v1/pauses/history``: every pause and resume, newest first

A scope is ``template``, ``signature``, ``journey`` or ``route``; the gate holds the marketing
sends of a paused one (``blocked``, reason ``paused:<scope>=<value>``) within about a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from activities.compliance.pauses import AlreadyPaused, NotPaused, Scope
from nudge.store import Pause, PauseBase, PauseEvent, PauseEventBase
from starter.api.auth import AUTH_ERRORS, CONFLICT, NEEDS_READ, NOT_FOUND, AdminCaller
from starter.api.deps import PausesDep
from starter.api.errors import invalid
from starter.api.services.pauses import UnknownPauseTarget

router = APIRouter(prefix="/v1/pauses", tags=["pauses"], responses=AUTH_ERRORS)
Who = Field(
    default=None,
    min_length=1,
    max_length=100,
    description="The person acting, recorded beside the API key's name (`ops (alice)`).",
)


class PauseCreate(BaseModel):
    scope: Scope
    value: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=500)
    by: str | None = Who


class PausePublic(PauseBase):
    created_at: datetime


class PauseEventPublic(PauseEventBase):
    id: int
    at: datetime


@router.get("", response_model=list[PausePublic], dependencies=NEEDS_READ)
async def list_pauses(pauses: PausesDep) -> Sequence[Pause]:
    """The pauses in effect, oldest first; an automatic one carries its complaints, sent and rate."""
    return await pauses.current()


@router.post("", status_code=201, response_model=PausePublic, responses=CONFLICT)
async def create_pause(body: PauseCreate, pauses: PausesDep, caller: AdminCaller) -> Pause:
    """Pause a scope by hand; 409 when it is paused already, 422 for a template, journey or route
    that does not exist (a typo would pause nothing)."""
    try:
        return await pauses.pause(
            scope=body.scope, value=body.value, reason=body.reason, by=caller.acting_for(body.by)
        )
    except UnknownPauseTarget as exc:
        raise invalid(str(exc)) from exc
    except AlreadyPaused as exc:
        raise HTTPException(409, detail=str(exc)) from exc


@router.delete("/{scope}/{value}", response_model=PausePublic, responses=NOT_FOUND)
async def delete_pause(
    scope: Scope,
    value: str,
    pauses: PausesDep,
    caller: AdminCaller,
    reason: Annotated[str | None, Query(max_length=500)] = None,
    by: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> Pause:
    """Resume a scope; answers the pause that was lifted, or 404 when it was not paused. The
    complaint-rate breaker then counts only what comes after the resume."""
    try:
        return await pauses.resume(scope=scope, value=value, reason=reason, by=caller.acting_for(by))
    except NotPaused as exc:
        raise HTTPException(404, detail=str(exc)) from exc


@router.get("/history", response_model=list[PauseEventPublic], dependencies=NEEDS_READ)
async def list_pause_history(
    pauses: PausesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Sequence[PauseEvent]:
    """Every pause and resume, newest first: who, when, why, and an automatic pause's figures."""
    return await pauses.history(limit=limit)
