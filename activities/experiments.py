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
from nudge.store import Assignment, Click, Conversion, Experiment, Message, read_sessions, utcnow

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


def _succeeded_at(metric: Metric) -> Any:
    """When the assignment's customer first succeeded on ``metric`` with a message of its variant
    (a person's click, the delivery receipt, the conversion), or NULL."""
    label = col(Assignment.experiment).concat(":").concat(col(Assignment.variant))
    mine = and_(col(Message.customer_id) == col(Assignment.customer_id), col(Message.variant) == label)
    if metric is Metric.CONVERTED:
        first = select(func.min(col(Conversion.at))).where(
            col(Conversion.customer_id) == col(Assignment.customer_id), col(Conversion.variant) == label
        )
    elif metric is Metric.CLICKED:
        first = (
            select(func.min(col(Click.at)))
            .join(Message, col(Message.id) == col(Click.message_id))
            .where(mine, col(Click.bot).is_(None))
        )
    else:  # delivered; a row from before delivered_at was kept has its last change instead
        first = select(func.min(func.coalesce(col(Message.delivered_at), col(Message.updated_at)))).where(
            mine, col(Message.status) == "delivered"
        )
    return first.scalar_subquery()


def _hour(connection: AsyncConnection, moment: Any) -> Any:
    if connection.dialect.name == "postgresql":
        return func.date_trunc("hour", moment)
    return func.strftime("%Y-%m-%dT%H", moment)


async def experiment_counts(
    connection: AsyncConnection, experiment: str, metric: Metric, *, hourly: bool = False
) -> tuple[Counts, list[Counts]]:
    """Per variant, (customers who succeeded, customers exposed); with ``hourly``, also the
    cumulative counts as each hour ended, oldest first: a look counts only the exposures and the
    successes that had happened by then, so it reads the same whenever the report is asked for
    (the sequential test's guarantee holds for that one sequence of looks)."""
    variant: Any = col(Assignment.variant).label("variant")
    if not hourly:
        figures: list[Any] = [func.count().label("n"), func.count().filter(_succeeded(metric)).label("k")]
        query = select(variant, *figures).where(col(Assignment.experiment) == experiment).group_by(variant)
        rows = (await connection.execute(query)).mappings().all()
        return {row["variant"]: (int(row["k"]), int(row["n"])) for row in rows}, []
    inner = (
        select(
            variant,
            _hour(connection, col(Assignment.at)).label("exposed"),
            _hour(connection, _succeeded_at(metric)).label("succeeded"),
        )
        .where(col(Assignment.experiment) == experiment)
        .subquery()
    )
    grouped = select(inner.c.variant, inner.c.exposed, inner.c.succeeded, func.count().label("n")).group_by(
        inner.c.variant, inner.c.exposed, inner.c.succeeded
    )
    rows = (await connection.execute(grouped)).mappings().all()
    exposures: dict[str, dict[str, int]] = {}
    successes: dict[str, dict[str, int]] = {}
    for row in rows:
        exposed, succeeded, n = str(row["exposed"]), row["succeeded"], int(row["n"])
        by_hour = exposures.setdefault(exposed, {})
        by_hour[row["variant"]] = by_hour.get(row["variant"], 0) + n
        if succeeded is not None:
            hour = max(exposed, str(succeeded))  # a success is never counted before its exposure
            won = successes.setdefault(hour, {})
            won[row["variant"]] = won.get(row["variant"], 0) + n
    totals: dict[str, tuple[int, int]] = {}
    looks: list[Counts] = []
    for hour in sorted(exposures.keys() | successes.keys()):
        for name, n in exposures.get(hour, {}).items():
            k, m = totals.get(name, (0, 0))
            totals[name] = (k, m + n)
        for name, n in successes.get(hour, {}).items():
            k, m = totals.get(name, (0, 0))
            totals[name] = (k + n, m)
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
        self._allocations: dict[tuple[str, str, tuple[str, ...]], tuple[datetime, dict[str, float]]] = {}
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
        if experiment is not None and experiment.journey != request.journey:
            # Two journeys running one experiment name: the first keeps it, rather than the row
            # flipping between their declarations on every assignment.
            log.warning(
                "experiment_declared_twice", experiment=request.experiment, journey=experiment.journey,
                other=request.journey,
            )  # fmt: skip
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
        live = sorted(name for name, weight in request.weights.items() if weight > 0)
        key = (request.experiment, request.metric.value, tuple(live))
        cached = self._allocations.get(key)
        if cached is not None and now - cached[0] < self._refresh:
            return cached[1]
        async with self._reads() as session:
            counts, _ = await experiment_counts(
                await session.connection(), request.experiment, request.metric
            )
        allocation = stats.probability_best({name: counts.get(name, (0, 0)) for name in live})
        self._allocations[key] = (now, allocation)
        return allocation
