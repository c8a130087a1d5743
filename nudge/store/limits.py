"""Each route's pace and breaker, kept in the database every worker process shares, so that
three workers together send at no more than a route's ``tps`` and a breaker one of them opens is
open for all (``activities/routing.py`` uses them; ``NUDGE_SHARED_ROUTE_LIMITS``).

- ``route_pace``: one row per route with its theoretical arrival time (``tat``, seconds on the
  database's clock): the generic cell rate algorithm. A send reserves its slot with one
  ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` and sleeps until it, so the workers never
  hold a lock while they wait and never disagree about the time.
- ``route_breaker``: one row per route, written when a breaker opens or closes (rare), read by
  every worker a few times a second.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

EPOCH_NOW = {
    "postgresql": "extract(epoch from clock_timestamp())",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}
"""The database's clock in seconds since 1970: every worker reads the same one."""


class RoutePace(SQLModel, table=True):
    __tablename__ = "route_pace"
    route: str = Field(primary_key=True, max_length=100)
    tat: float
    """When the route is free again: the end of the last slot reserved (database clock)."""


class RouteBreaker(SQLModel, table=True):
    __tablename__ = "route_breaker"
    route: str = Field(primary_key=True, max_length=100)
    open_until: float
    """Until when the breaker keeps traffic off the route (database clock); then one probe."""
    reason: str = Field(max_length=500)


@dataclass(frozen=True, slots=True)
class Opened:
    """A route's breaker as the database has it: open for ``remaining`` seconds more."""

    remaining: float
    reason: str


def _now(engine: AsyncEngine) -> str:
    return EPOCH_NOW[engine.dialect.name]


async def reserve(
    engine: AsyncEngine, route: str, cost: float, tolerance: float, horizon: float
) -> float | None:
    """Reserve ``cost`` seconds of ``route``'s time: answers how long to wait before sending, or
    None when the slots already reserved reach further than ``horizon`` ahead (ask again later).

    ``tolerance`` is the burst: a route idle for that long may send that much at once.
    """
    now = _now(engine)
    start = f"max(route_pace.tat, {now} - :tolerance)"
    if engine.dialect.name == "postgresql":
        start = f"greatest(route_pace.tat, {now} - :tolerance)"
    statement = text(
        f"INSERT INTO route_pace (route, tat) VALUES (:route, {now} + :cost) "
        f"ON CONFLICT (route) DO UPDATE SET tat = {start} + :cost "
        f"WHERE {start} - {now} <= :horizon "
        f"RETURNING tat - :cost - {now}"
    )
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                statement, {"route": route, "cost": cost, "tolerance": tolerance, "horizon": horizon}
            )
        ).first()
    return None if row is None else max(0.0, float(row[0]))


async def backlog(engine: AsyncEngine, route: str) -> float:
    """How far ahead ``route``'s reserved slots reach (0 when it is free)."""
    async with engine.execution_options(nudge_read_only=True).connect() as conn:
        row = (
            await conn.execute(
                text(f"SELECT tat - {_now(engine)} FROM route_pace WHERE route = :route"), {"route": route}
            )
        ).first()
    return 0.0 if row is None else max(0.0, float(row[0]))


CLOSED = -1.0
"""``open_until`` of a breaker a probe closed: told apart from one whose time merely ran out."""


async def open_breaker(engine: AsyncEngine, route: str, seconds: float, reason: str) -> None:
    """Open ``route``'s breaker for every worker for ``seconds``; an open one is only ever
    extended (a retryable failure's 30 s never cuts an account pause's 5 minutes short)."""
    now = _now(engine)
    later = "greatest" if engine.dialect.name == "postgresql" else "max"
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"INSERT INTO route_breaker (route, open_until, reason) VALUES (:route, {now} + :s, :reason) "
                "ON CONFLICT (route) DO UPDATE SET "
                f"open_until = {later}(route_breaker.open_until, {now} + :s), "
                "reason = CASE WHEN route_breaker.open_until >= "
                f"{now} + :s THEN route_breaker.reason ELSE :reason END"
            ),
            {"route": route, "s": seconds, "reason": reason[:500]},
        )


async def close_breaker(engine: AsyncEngine, route: str) -> None:
    """A probe succeeded: the route is closed for every worker (until it opens again)."""
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE route_breaker SET open_until = :closed, reason = '' WHERE route = :route"),
            {"route": route, "closed": CLOSED},
        )


async def breakers(engine: AsyncEngine) -> tuple[dict[str, Opened], set[str]]:
    """The breakers open now, by route, and the routes a probe closed."""
    now = _now(engine)
    async with engine.execution_options(nudge_read_only=True).connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT route, open_until - {now}, reason, open_until = :closed FROM route_breaker "
                    f"WHERE open_until > {now} OR open_until = :closed"
                ),
                {"closed": CLOSED},
            )
        ).all()
    opened = {str(r): Opened(float(left), str(why)) for r, left, why, closed in rows if not closed}
    return opened, {str(r) for r, _, _, closed in rows if closed}
