"""Pauses over HTTP: what is paused and why, pause a scope by hand, resume one, and the audit.

- ``GET /v1/pauses``: the pauses in effect, with the figures that opened an automatic one
- ``POST /v1/pauses`` ``{"scope": "template", "value": "cart_reminder", "reason": "..."}``
- ``DELETE /v1/pauses/{scope}/{value}?reason=...``: resume (404 when it is not paused)
- ``GET /v1/pauses/history``: every pause and resume, newest first

A scope is ``template``, ``signature``, ``journey`` or ``route``; the gate holds the marketing
sends of a paused one (``blocked``, reason ``paused:<scope>=<value>``) within about a second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance.pauses import (
    AlreadyPaused,
    NotPaused,
    Scope,
    Source,
    current_pauses,
    pause,
    pause_history,
    resume,
)
from activities.compliance.registry import Registry
from nudge.models import Category
from nudge.settings import Settings
from nudge.store import Pause, PauseBase, PauseEvent, PauseEventBase

router = APIRouter(prefix="/v1/pauses", tags=["pauses"])
Who = Field(default="api", min_length=1, max_length=200, description="Who acts, for the audit.")


class PauseCreate(BaseModel):
    scope: Scope
    value: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=500)
    by: str = Who


class PausePublic(PauseBase):
    created_at: datetime


class PauseEventPublic(PauseEventBase):
    id: int
    at: datetime


class PauseContext:
    """What the pause routes need from the gateway's services."""

    def __init__(self, request: Request) -> None:
        services: Any = request.app.state.services
        self.sessions: async_sessionmaker[AsyncSession] = services.sessions
        self.settings: Settings = services.settings
        self.journeys: Mapping[str, Category] = services.journey_categories
        self.registry: Registry = services.registry


async def _context(request: Request) -> PauseContext:
    # An async dependency: FastAPI runs a sync one (a class, too) in a worker thread per request.
    return PauseContext(request)


ContextDep = Annotated[PauseContext, Depends(_context)]


@router.get("", response_model=list[PausePublic])
async def list_pauses(context: ContextDep) -> Sequence[Pause]:
    """The pauses in effect, oldest first; an automatic one carries its complaints, sent and rate."""
    return await current_pauses(context.sessions)


@router.post("", status_code=201, response_model=PausePublic)
async def create_pause(body: PauseCreate, context: ContextDep) -> Pause:
    """Pause a scope by hand; 409 when it is paused already, 422 for a template, journey or route
    that does not exist (a typo would pause nothing)."""
    if (problem := await _unknown(body.scope, body.value, context)) is not None:
        raise HTTPException(422, detail=problem)
    try:
        return await pause(
            context.sessions,
            scope=body.scope,
            value=body.value,
            reason=body.reason,
            source=Source.MANUAL,
            by=body.by,
        )
    except AlreadyPaused as exc:
        raise HTTPException(409, detail=str(exc)) from exc


@router.delete("/{scope}/{value}", response_model=PausePublic)
async def delete_pause(
    scope: Scope,
    value: str,
    context: ContextDep,
    reason: Annotated[str | None, Query(max_length=500)] = None,
    by: Annotated[str, Query(min_length=1, max_length=200)] = "api",
) -> Pause:
    """Resume a scope; answers the pause that was lifted, or 404 when it was not paused. The
    complaint-rate breaker then counts only what comes after the resume."""
    try:
        return await resume(context.sessions, scope=scope, value=value, reason=reason, by=by)
    except NotPaused as exc:
        raise HTTPException(404, detail=str(exc)) from exc


@router.get("/history", response_model=list[PauseEventPublic])
async def list_pause_history(
    context: ContextDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Sequence[PauseEvent]:
    """Every pause and resume, newest first: who, when, why, and an automatic pause's figures."""
    return await pause_history(context.sessions, limit=limit)


async def _unknown(scope: Scope, value: str, context: PauseContext) -> str | None:
    """Why ``value`` names nothing a pause could hold: no such template, journey or route, or a
    transactional one (pauses hold marketing only). None when it does, and for signatures."""
    if scope is Scope.TEMPLATE:
        variants = await context.registry.templates(code=value)
        if not variants:
            return f"unknown template {value!r}"
        if all(v.category == Category.TRANSACTIONAL.value for v in variants):
            return f"template {value!r} is transactional: pauses hold marketing sends only"
    elif scope is Scope.JOURNEY:
        if value not in context.journeys:
            return f"unknown journey {value!r}; known: {', '.join(sorted(context.journeys))}"
        if context.journeys[value] is Category.TRANSACTIONAL:
            return f"journey {value!r} is transactional: pauses hold marketing sends only"
    elif scope is Scope.ROUTE:
        routes = [r.name for r in context.settings.effective_routes]
        if value not in routes:
            return f"unknown route {value!r}; known: {', '.join(routes)}"
    return None
