"""Broadcasts over HTTP:

- ``POST /v1/broadcasts`` ``{"audience": "vip", "template": "spring_sale", ...}``: start one
  (``admin``); 409 when the id was used before, 422 for an unknown audience, template or route
- ``GET /v1/broadcasts``: the latest, newest first, with their progress (``read``)
- ``GET /v1/broadcasts/{broadcast_id}``: one broadcast's progress, from its query (``read``)
- ``POST /v1/broadcasts/{broadcast_id}:pause``, ``:resume``, ``:cancel``: its updates, each
  answering the progress once it took effect (``admin``); 409 when its state does not allow it

Recurring broadcasts are Temporal Schedules, kept with ``nudge broadcast schedule``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from nudge.broadcasts import BROADCAST_ID_PATTERN, Progress
from starter.api.auth import AUTH_ERRORS, CONFLICT, NEEDS_READ, NOT_FOUND, AdminCaller, Problem
from starter.api.deps import ServicesDep
from starter.api.errors import invalid
from starter.api.services.broadcast_models import (
    BroadcastCreate,
    BroadcastExists,
    BroadcastRefused,
    BroadcastView,
    InvalidBroadcast,
    NoWorkerAnswered,
    UnknownBroadcast,
)
from starter.api.services.broadcasts import Broadcasts

router = APIRouter(prefix="/v1/broadcasts", tags=["broadcasts"], responses=AUTH_ERRORS)
NO_WORKER: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "No worker took the update up in time; it may still take effect."}
}
BroadcastId = Annotated[str, Path(pattern=BROADCAST_ID_PATTERN, description="The broadcast's id.")]


async def _broadcasts(services: ServicesDep) -> Broadcasts:
    return Broadcasts(
        services.client,
        sessions=services.sessions,
        registry=services.registry,
        task_queue=services.settings.task_queue,
        routes=[route.name for route in services.settings.effective_routes],
    )


BroadcastsDep = Annotated[Broadcasts, Depends(_broadcasts)]


@router.post("", status_code=201, response_model=BroadcastView, responses=CONFLICT)
async def start_broadcast(
    body: BroadcastCreate, broadcasts: BroadcastsDep, caller: AdminCaller
) -> BroadcastView:
    """Start a broadcast of ``template`` to ``audience`` (now, or at ``start_at``); 409 when a
    broadcast had this id already (an id keys its messages, so it is never reused)."""
    try:
        return await broadcasts.start(body, by=caller.acting_for(None))
    except InvalidBroadcast as exc:
        raise invalid(str(exc), loc=("body", exc.field)) from exc
    except BroadcastExists as exc:
        raise HTTPException(409, detail=str(exc)) from exc


@router.get("", response_model=list[BroadcastView], dependencies=NEEDS_READ)
async def list_broadcasts(
    broadcasts: BroadcastsDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[BroadcastView]:
    """The latest broadcasts, newest first (by the ``NudgeBroadcastId`` search attribute)."""
    return await broadcasts.latest(limit=limit)


@router.get("/{broadcast_id}", response_model=BroadcastView, responses=NOT_FOUND, dependencies=NEEDS_READ)
async def broadcast_progress(broadcast_id: BroadcastId, broadcasts: BroadcastsDep) -> BroadcastView:
    """Where a broadcast is: total, sent, delivered, suppressed, no consent, capped, deferred,
    failed, expired, the current rate; a closed one's final figures."""
    try:
        return await broadcasts.view(broadcast_id)
    except UnknownBroadcast as exc:
        raise HTTPException(404, detail=str(exc)) from exc


async def _update(broadcasts: Broadcasts, broadcast_id: str, update: str) -> Progress:
    try:
        return await getattr(broadcasts, update)(broadcast_id)  # type: ignore[no-any-return]
    except UnknownBroadcast as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    except BroadcastRefused as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    except NoWorkerAnswered as exc:
        raise HTTPException(503, detail=str(exc)) from exc


UPDATE_ERRORS = {**NOT_FOUND, **CONFLICT, **NO_WORKER}


@router.post("/{broadcast_id}:pause", response_model=Progress, responses=UPDATE_ERRORS)
async def pause_broadcast(broadcast_id: BroadcastId, broadcasts: BroadcastsDep, _: AdminCaller) -> Progress:
    """No new batch starts; answers once every batch in flight has finished."""
    return await _update(broadcasts, broadcast_id, "pause")


@router.post("/{broadcast_id}:resume", response_model=Progress, responses=UPDATE_ERRORS)
async def resume_broadcast(broadcast_id: BroadcastId, broadcasts: BroadcastsDep, _: AdminCaller) -> Progress:
    """Batches start again, at the broadcast's rate."""
    return await _update(broadcasts, broadcast_id, "resume")


@router.post("/{broadcast_id}:cancel", response_model=Progress, responses=UPDATE_ERRORS)
async def cancel_broadcast(broadcast_id: BroadcastId, broadcasts: BroadcastsDep, _: AdminCaller) -> Progress:
    """Stop for good: answers once the batches in flight finished and whoever still waited has
    expired (reason ``expired:cancelled``)."""
    return await _update(broadcasts, broadcast_id, "cancel")
