"""One set of route limits for every worker process, held in the database they share
(``nudge/store/limits.py``): with three workers, a route still sees at most its ``tps``, and a
breaker that one worker opens keeps the others off the route too.

- ``SharedRateLimiter`` reserves each send's slot on the route's shared timeline and sleeps until
  it: one round trip per send (per batch call for a broadcast). Marketing sends reserve at most
  ``HORIZON`` ahead and ask again later, so a transactional send, which always reserves, waits
  behind at most that much marketing traffic: the lane keeps its latency across workers too.
- ``BreakerSync`` writes each local open and close to ``route_breaker`` and applies the other
  workers' every ``every`` seconds: a breaker opened anywhere is open everywhere within that.
  Failures are counted by each worker (five in a row, in one process, open it for all).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.breaker import CircuitBreaker
from activities.routing import Router
from nudge.logging import get_logger
from nudge.store.limits import backlog, breakers, close_breaker, open_breaker, reserve

log = get_logger(__name__)
HORIZON = 0.25
"""Seconds of reserved slots beyond which a marketing send waits instead of reserving."""


@dataclass
class SharedRateLimiter:
    """``RateLimiter``'s interface on the shared timeline of ``route`` (burst ``max(1, rate/10)``,
    as the local one)."""

    route: str
    rate: float
    engine: AsyncEngine
    horizon: float = HORIZON
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @property
    def tolerance(self) -> float:
        return max(1.0, self.rate / 10) / self.rate

    async def acquire(self, *, priority: bool = False, count: int = 1) -> float:
        """Wait for ``count`` requests' slots; a marketing batch books them a horizon at a time,
        so that a transactional send can come between its parts."""
        if priority:
            return await self._book(count, math.inf)
        chunk = max(1, int(self.horizon * self.rate))
        waited = 0.0
        while count > 0:
            part = min(count, chunk)
            waited += await self._book(part, self.horizon)
            count -= part
        return waited

    async def _book(self, count: int, reach: float) -> float:
        waited = 0.0
        while True:
            wait = await reserve(self.engine, self.route, count / self.rate, self.tolerance, reach)
            if wait is not None:
                if wait > 0:
                    await self.sleep(wait)
                return waited + wait
            # Booked beyond the horizon: wait until it is not, then book (one read, not a poll).
            pause = max(self.horizon / 2, await backlog(self.engine, self.route) - self.horizon)
            await self.sleep(pause)
            waited += pause


@dataclass
class BreakerSync:
    """Keeps the breakers of ``router`` in step with every other worker's."""

    engine: AsyncEngine
    router: Router
    every: float = 0.5
    _wanted: dict[str, tuple[float | None, str]] = field(default_factory=dict)
    _writers: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def attach(self) -> None:
        for route in self.router.routes:
            route.breaker.on_change = self._changed

    def _changed(self, breaker: CircuitBreaker, cooldown: float | None) -> None:
        """A local open (``cooldown`` seconds) or close. The breaker's callers are synchronous, so
        one writer per route writes it in the background, in order, and only the latest state:
        a hundred account errors in one batch call are one write."""
        self._wanted[breaker.route] = (cooldown, breaker.reason or "")
        if breaker.route not in self._writers:
            self._writers[breaker.route] = asyncio.ensure_future(self._write(breaker.route))

    async def _write(self, route: str) -> None:
        try:
            while route in self._wanted:
                cooldown, reason = self._wanted.pop(route)
                try:
                    if cooldown is None:
                        await close_breaker(self.engine, route)
                    else:
                        await open_breaker(self.engine, route, cooldown, reason)
                except Exception as exc:  # the database is down: this worker's breaker still holds
                    log.warning("route_breaker_not_shared", route=route, error=type(exc).__name__)
        finally:
            del self._writers[route]

    async def refresh(self) -> None:
        """Apply the other workers' opens, and the closes their probes made, to this worker's."""
        opened, closed = await breakers(self.engine)
        for route in self.router.routes:
            if route.name in self._writers:
                continue  # our own write is on its way: the database is behind us
            breaker = route.breaker
            if (shared := opened.get(route.name)) is not None:
                breaker.opened_elsewhere(shared.remaining, shared.reason)
            elif route.name in closed and breaker.remaining > 0:
                breaker.closed_elsewhere()  # still open here; another worker's probe closed it

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("route_breakers_unread", error=type(exc).__name__)
            await asyncio.sleep(self.every)

    async def aclose(self) -> None:
        """Wait for the writes on their way."""
        while self._writers:
            with contextlib.suppress(Exception):
                await next(iter(self._writers.values()))
