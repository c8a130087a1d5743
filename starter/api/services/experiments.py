"""Experiments for the API: list them, the verdict on one, and concluding one with a winner (from
then on every new customer gets it, without a deploy)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.experiments import experiment_counts
from nudge.errors import InvalidInput
from nudge.experiments import Metric, Verdict, verdict
from nudge.logging import get_logger
from nudge.store import Assignment, Experiment, read_sessions, utcnow

log = get_logger(__name__)


class UnknownExperiment(InvalidInput):
    """No experiment by that name (a journey's ``split`` creates it)."""


class UnknownVariant(InvalidInput):
    """The experiment has no such variant."""


class AlreadyConcluded(InvalidInput):
    """The experiment has a winner already."""


class ExperimentPublic(BaseModel):
    name: str
    journey: str
    mode: str
    metric: Metric
    variants: list[str]
    weights: dict[str, float]
    winner: str | None
    concluded_at: datetime | None
    concluded_by: str | None
    created_at: datetime


class ExperimentReport(BaseModel):
    experiment: ExperimentPublic
    allocation: dict[str, float]
    """The allocation in force for the latest assignment (a bandit's moves; the winner's 100 %)."""
    verdict: Verdict


def _shares(weights: dict[str, float]) -> dict[str, float]:
    """Declared weights (``{"a": 50, "b": 50}``) as the shares an allocation is (``0.5`` each)."""
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items()} if total > 0 else dict(weights)


def _public(row: Experiment) -> ExperimentPublic:
    return ExperimentPublic.model_validate(row, from_attributes=True)


class Experiments:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        min_lift: float = 0.2,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._reads = read_sessions(sessions)
        self._min_lift = min_lift
        self._clock = clock

    async def list(self) -> list[ExperimentPublic]:
        async with self._reads() as session:
            rows = (await session.exec(select(Experiment).order_by(col(Experiment.created_at)))).all()
        return [_public(row) for row in rows]

    async def report(self, name: str, *, metric: Metric | None = None) -> ExperimentReport:
        """The verdict on ``metric`` (default: the experiment's own), with hourly looks."""
        async with self._reads() as session:
            row = await session.get(Experiment, name)
            if row is None:
                raise UnknownExperiment(f"no experiment {name!r} (a journey's split creates it)")
            judged = metric or Metric(row.metric)
            counts, looks = await experiment_counts(await session.connection(), name, judged, hourly=True)
            latest = (
                await session.exec(
                    select(Assignment)
                    .where(Assignment.experiment == name)
                    .order_by(col(Assignment.id).desc())
                )
            ).first()
        for variant in row.variants:  # a variant nobody got yet still shows
            counts.setdefault(variant, (0, 0))
        control = row.variants[0] if row.variants else None
        return ExperimentReport(
            experiment=_public(row),
            allocation=dict(latest.allocation) if latest and latest.allocation else _shares(row.weights),
            verdict=verdict(counts, looks, metric=judged, control=control, min_lift=self._min_lift),
        )

    async def conclude(self, name: str, *, winner: str, by: str) -> ExperimentPublic:
        """Send every new customer to ``winner`` from now on."""
        async with self._sessions() as session:
            row = await session.get(Experiment, name)
            if row is None:
                raise UnknownExperiment(f"no experiment {name!r} (a journey's split creates it)")
            if winner not in row.variants:
                raise UnknownVariant(f"{name} has no variant {winner!r}; it has {', '.join(row.variants)}")
            if row.winner is not None:
                raise AlreadyConcluded(f"{name} was concluded with {row.winner!r} by {row.concluded_by}")
            # Only while it has no winner: of two concludes at once, one wins and the other is told.
            moved = await session.exec(
                update(Experiment)
                .where(col(Experiment.name) == name, col(Experiment.winner).is_(None))
                .values(winner=winner, concluded_at=self._clock(), concluded_by=by)
            )
            await session.commit()
            if moved.rowcount != 1:
                raise AlreadyConcluded(f"{name} was concluded meanwhile")
            await session.refresh(row)
        log.warning("experiment_concluded", experiment=name, winner=winner, by=by)
        return _public(row)
