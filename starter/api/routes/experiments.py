"""Experiments over HTTP:

- ``GET /v1/experiments``: every experiment a journey's ``split`` has run (``read``)
- ``GET /v1/experiments/{name}?metric=clicked``: per variant exposures, rate and interval,
  probability to be best, the comparisons with the control, and the verdict in words (``read``)
- ``POST /v1/experiments/{name}:conclude`` ``{"winner": "b"}``: every new customer gets b (``admin``)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from nudge.experiments import Metric
from starter.api.auth import AUTH_ERRORS, CONFLICT, NEEDS_READ, NOT_FOUND, AdminCaller
from starter.api.deps import ExperimentsDep
from starter.api.errors import invalid
from starter.api.services.experiments import (
    AlreadyConcluded,
    ExperimentPublic,
    ExperimentReport,
    UnknownExperiment,
    UnknownVariant,
)

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], responses=AUTH_ERRORS)


class Conclusion(BaseModel):
    winner: str = Field(min_length=1, max_length=100)
    by: str | None = Field(default=None, min_length=1, max_length=100, description="The person acting.")


@router.get("", response_model=list[ExperimentPublic], dependencies=NEEDS_READ)
async def list_experiments(experiments: ExperimentsDep) -> list[ExperimentPublic]:
    """Every experiment, oldest first."""
    return await experiments.list()


@router.get("/{name}", response_model=ExperimentReport, responses=NOT_FOUND, dependencies=NEEDS_READ)
async def experiment_report(
    name: str,
    experiments: ExperimentsDep,
    metric: Annotated[Metric | None, Query(description="Judge on this (default: the experiment's).")] = None,
) -> ExperimentReport:
    """The verdict: conclusive only with the minimum sample and a sequential (always-valid)
    p-value below 0.05, so reading it every hour does not make false winners."""
    try:
        return await experiments.report(name, metric=metric)
    except UnknownExperiment as exc:
        raise HTTPException(404, detail=str(exc)) from exc


@router.post("/{name}:conclude", response_model=ExperimentPublic, responses={**NOT_FOUND, **CONFLICT})
async def conclude_experiment(
    name: str, body: Conclusion, experiments: ExperimentsDep, caller: AdminCaller
) -> ExperimentPublic:
    """Send every new customer to the winner from now on (those placed before keep their variant);
    409 when it was concluded already, 422 for a variant it does not have."""
    try:
        return await experiments.conclude(name, winner=body.winner, by=caller.acting_for(body.by))
    except UnknownExperiment as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    except UnknownVariant as exc:
        raise invalid(str(exc), loc=("body", "winner")) from exc
    except AlreadyConcluded as exc:
        raise HTTPException(409, detail=str(exc)) from exc
