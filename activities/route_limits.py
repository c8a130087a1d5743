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

from activities.routing import CircuitBreaker, Router
from nudge.logging import get_logger
from nudge.store.limits import close_breaker, open_breaker, open_breakers, reserve

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
        waited = 0.0
        reach = math.inf if priority else self.horizon
        while True:
            wait = await reserve(self.engine, self.route, count / self.rate, self.tolerance, reach)
            if wait is not None:
                if wait > 0:
                    await self.sleep(wait)
                return waited + wait
            await self.sleep(self.horizon / 2)
            waited += self.horizon / 2


@dataclass
class BreakerSync:
    """Keeps the breakers of ``router`` in step with every other worker's."""

    engine: AsyncEngine
    router: Router
    every: float = 0.5
    _writes: set[asyncio.Task[None]] = field(default_factory=set)
    _pending: dict[str, int] = field(default_factory=dict)

    def attach(self) -> None:
        for route in self.router.routes:
            route.breaker.on_change = self._changed

    def _changed(self, breaker: CircuitBreaker, cooldown: float | None) -> None:
        """A local open (``cooldown`` seconds) or close: written at once, in the background (the
        breaker's callers are synchronous)."""
        if cooldown is None:
            write = close_breaker(self.engine, breaker.route)
        else:
            write = open_breaker(self.engine, breaker.route, cooldown, breaker.reason or "")
        self._pending[breaker.route] = self._pending.get(breaker.route, 0) + 1
        task = asyncio.ensure_future(self._write(breaker.route, write))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, route: str, write: Awaitable[None]) -> None:
        try:
            await write
        except Exception as exc:  # the database is down: this worker's breaker still holds
            log.warning("route_breaker_not_shared", route=route, error=type(exc).__name__)
        finally:
            self._pending[route] -= 1

    async def refresh(self) -> None:
        """Apply the breakers the database has open (and the closes) to this worker's."""
        opened = await open_breakers(self.engine)
        for route in self.router.routes:
            if self._pending.get(route.name):
                continue  # our own write is on its way: the database is behind us
            breaker = route.breaker
            if (shared := opened.get(route.name)) is not None:
                breaker.opened_elsewhere(shared.remaining, shared.reason)
            elif breaker.remaining > 0 and breaker.clock() - breaker.opened_at > self.every:
                breaker.closed_elsewhere()  # still open here, gone there: a probe closed it

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("route_breakers_unread", error=type(exc).__name__)
            await asyncio.sleep(self.every)

    async def aclose(self) -> None:
        for task in list(self._writes):
            with contextlib.suppress(Exception):
                await task
