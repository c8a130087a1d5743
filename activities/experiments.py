"""Experiments: ``assign_variant`` places a customer in a variant and records it, and the counts an
experiment is judged on (exposures, and the customers whose messages in that variant succeeded).

A customer keeps the variant they were first placed in. A new customer gets:
- the winner, once ``nudge experiments conclude`` named one;
- for a bandit, a variant drawn with each one's probability of being best so far (Thompson
  sampling, as probability matching: the allocation is computed from the counts, and the
  customer's bucket point picks within it, so the choice is recorded and replays);
- otherwise, the journey's declared weights (``workflows.keys.bucket``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel import col
from sqlmodel import select as select_rows
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from nudge import stats
from nudge.bucketing import bucket
from nudge.experiments import Metric, VariantChoice, VariantRequest
from nudge.logging import get_logger
from nudge.store import Assignment, Conversion, Experiment, Message, read_sessions, utcnow

log = get_logger(__name__)
Counts = dict[str, tuple[int, int]]


def _succeeded(metric: Metric) -> ColumnElement[bool]:
    """Whether the assignment's customer succeeded on ``metric`` with a message of its variant."""
    label = col(Assignment.experiment).concat(":").concat(col(Assignment.variant))
    if metric is Metric.CONVERTED:
        return exists().where(
            and_(col(Conversion.customer_id) == col(Assignment.customer_id), col(Conversion.variant) == label)
        )
    happened = col(Message.clicked) if metric is Metric.CLICKED else col(Message.status) == "delivered"
    return exists().where(
        and_(col(Message.customer_id) == col(Assignment.customer_id), col(Message.variant) == label, happened)
    )


async def experiment_counts(
    connection: AsyncConnection, experiment: str, metric: Metric, *, hourly: bool = False
) -> tuple[Counts, list[Counts]]:
    """Per variant, (customers who succeeded, customers exposed); with ``hourly``, also the
    cumulative counts at the end of each hour customers were exposed in, oldest first."""
    hour: Any
    if connection.dialect.name == "postgresql":
        hour = func.date_trunc("hour", col(Assignment.at))
    else:
        hour = func.strftime("%Y-%m-%dT%H", col(Assignment.at))
    variant: Any = col(Assignment.variant).label("variant")
    keys: list[Any] = [variant, hour.label("hour")] if hourly else [variant]
    figures: list[Any] = [func.count().label("n"), func.count().filter(_succeeded(metric)).label("k")]
    query = select(*keys, *figures).where(col(Assignment.experiment) == experiment).group_by(*keys)
    rows = (await connection.execute(query)).mappings().all()
    totals: dict[str, tuple[int, int]] = {}
    looks: list[Counts] = []
    hour_of = object()
    for row in sorted(rows, key=lambda r: str(r["hour"])) if hourly else rows:
        if hourly and row["hour"] != hour_of:
            if totals:
                looks.append(dict(totals))  # as the previous hour ended
            hour_of = row["hour"]
        k, n = totals.get(row["variant"], (0, 0))
        totals[row["variant"]] = (k + int(row["k"]), n + int(row["n"]))
    if hourly and totals:
        looks.append(dict(totals))
    return totals, looks


class ExperimentActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        refresh: timedelta = timedelta(seconds=5),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._reads = read_sessions(sessions)
        self._refresh = refresh
        self._clock = clock
        self._allocations: dict[str, tuple[datetime, dict[str, float]]] = {}
        """A bandit's allocation, recomputed at most every ``refresh``: every assignment would
        otherwise count the whole experiment again."""

    @activity.defn(name="assign_variant")
    async def assign_variant(self, request: VariantRequest) -> VariantChoice:
        """The customer's variant in ``request.experiment``, recorded the first time."""
        async with self._reads() as session:
            placed = await self._placed(session, request)
            experiment = await session.get(Experiment, request.experiment)
        if placed is not None:
            return VariantChoice(variant=placed.variant, reason="assigned", allocation=placed.allocation)
        experiment = await self._declare(experiment, request)
        if experiment.winner:
            allocation, reason = {experiment.winner: 1.0}, "winner"
        elif request.bandit:
            allocation, reason = await self._allocation(request), "bandit"
        else:
            total = sum(request.weights.values())
            allocation, reason = {k: w / total for k, w in request.weights.items()}, "weights"
        variant = experiment.winner or bucket(request.experiment, request.customer_id, allocation)
        row = Assignment(
            experiment=request.experiment,
            variant=variant,
            customer_id=request.customer_id,
            workflow_id=request.workflow_id,
            journey=request.journey,
            reason=reason,
            allocation=allocation,
            at=self._clock(),
        )
        async with self._sessions() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:  # placed meanwhile (a retried attempt, a concurrent run)
                await session.rollback()
                placed = await self._placed(session, request)
                assert placed is not None
                return VariantChoice(variant=placed.variant, reason="assigned", allocation=placed.allocation)
        log.info("variant_assigned", experiment=request.experiment, variant=variant, reason=reason)
        return VariantChoice(variant=variant, reason=reason, allocation=allocation)

    @staticmethod
    async def _placed(session: AsyncSession, request: VariantRequest) -> Assignment | None:
        query = select_rows(Assignment).where(
            col(Assignment.experiment) == request.experiment,
            col(Assignment.customer_id) == request.customer_id,
        )
        return (await session.exec(query)).first()

    async def _declare(self, experiment: Experiment | None, request: VariantRequest) -> Experiment:
        """The experiment's row, created by its first assignment and kept to what the code declares."""
        mode = "bandit" if request.bandit else "fixed"
        declared: dict[str, Any] = {
            "journey": request.journey,
            "variants": sorted(request.weights),
            "weights": dict(request.weights),
            "mode": mode,
            "metric": request.metric.value,
        }
        if experiment is not None and all(getattr(experiment, k) == v for k, v in declared.items()):
            return experiment
        async with self._sessions() as session:
            row = await session.get(Experiment, request.experiment)
            if row is None:
                row = Experiment(name=request.experiment, **declared)
            else:
                for key, value in declared.items():
                    setattr(row, key, value)
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:  # created meanwhile by another customer's split
                await session.rollback()
                row = await session.get(Experiment, request.experiment)
                assert row is not None
        return row

    async def _allocation(self, request: VariantRequest) -> dict[str, float]:
        now = self._clock()
        cached = self._allocations.get(request.experiment)
        if cached is not None and now - cached[0] < self._refresh and set(cached[1]) == set(request.weights):
            return cached[1]
        async with self._reads() as session:
            counts, _ = await experiment_counts(
                await session.connection(), request.experiment, request.metric
            )
        live = [name for name, weight in request.weights.items() if weight > 0]
        allocation = stats.probability_best({name: counts.get(name, (0, 0)) for name in live})
        self._allocations[request.experiment] = (now, allocation)
        return allocation
