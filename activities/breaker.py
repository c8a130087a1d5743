"""What keeps one route healthy: its circuit breaker and its pace.

- ``CircuitBreaker`` opens after repeated retryable failures, or at once on an account-level error
  (balance, suspension, credentials). After a cool-down it lets one probe through; a success closes
  it again.
- ``RateLimiter`` keeps each route under its TPS. Transactional sends jump the queue, so a
  marketing blast never holds back a payment confirmation.

Both keep their state in the worker; with ``NUDGE_SHARED_ROUTE_LIMITS`` (the default)
``activities/route_limits.py`` holds them in the database instead, across every worker process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from nudge.logging import get_logger

log = get_logger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Closed -> open after ``threshold`` failures in a row or one account-level error -> half-open
    after the cool-down (one probe) -> closed on the probe's success, open again on its failure."""

    route: str
    threshold: int = 5
    cooldown: float = 30.0
    account_cooldown: float = 300.0
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    reason: str | None = None
    _retry_at: float = 0.0
    _probing: bool = False
    on_change: Callable[[CircuitBreaker, float | None], None] | None = None
    """Told of each open (with its cool-down in seconds) and each close (None): what the
    workers share (``activities/route_limits.py``)."""
    opened_at: float = 0.0

    def allow(self) -> bool:
        """May a send use this route now? In half-open state, only one probe at a time."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and self.clock() >= self._retry_at:
            self.state = BreakerState.HALF_OPEN
            self._probing = False
            log.info("route_probing", route=self.route)
        if self.state is BreakerState.HALF_OPEN and (not self._probing or self.clock() >= self._retry_at):
            # One probe at a time; a probe that never reported back (its activity was cancelled)
            # gives way to a new one after another cool-down.
            self._probing = True
            self._retry_at = self.clock() + self.cooldown
            return True
        return False

    def record_success(self) -> None:
        if self.state is BreakerState.OPEN:
            return  # a call that started before the breaker opened: only a probe may close it
        if self.state is not BreakerState.CLOSED:
            log.info("route_recovered", route=self.route, after=self.reason)
            if self.on_change is not None:
                self.on_change(self, None)
        self.state, self.failures, self.reason, self._probing = BreakerState.CLOSED, 0, None, False

    def record_failure(self, reason: str) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.threshold:
            self._open(reason, self.cooldown)

    def trip(self, reason: str) -> None:
        """An account-level error: stop using the route now, for longer, and alert."""
        self._open(reason, self.account_cooldown)
        log.error(
            "route_paused", route=self.route, reason=reason, alert=True, retry_in_s=self.account_cooldown
        )

    def _open(self, reason: str, cooldown: float) -> None:
        until = self.clock() + cooldown
        if self.state is BreakerState.OPEN and until <= self._retry_at:
            return  # already open for longer: a retryable failure never cuts an account pause short
        if self.state is not BreakerState.OPEN:
            log.warning("route_opened", route=self.route, reason=reason, failures=self.failures)
            self.opened_at = self.clock()
        self.state, self.reason, self._probing, self._retry_at = BreakerState.OPEN, reason, False, until
        if self.on_change is not None:
            self.on_change(self, cooldown)

    @property
    def remaining(self) -> float:
        """Seconds the breaker stays open before its probe (0 once it may probe)."""
        return max(0.0, self._retry_at - self.clock()) if self.state is BreakerState.OPEN else 0.0

    def opened_elsewhere(self, remaining: float, reason: str) -> None:
        """Another worker opened this route's breaker, for ``remaining`` seconds more. A breaker
        past its own cool-down (half-open) is left to its probe, which decides for everyone."""
        if self.state is BreakerState.HALF_OPEN:
            return
        if self.state is not BreakerState.OPEN:
            log.warning("route_opened", route=self.route, reason=reason, by="another worker")
            self.state, self.reason, self._probing = BreakerState.OPEN, reason, False
            self.opened_at = self.clock()
        self._retry_at = max(self._retry_at, self.clock() + remaining)

    def closed_elsewhere(self) -> None:
        """Another worker's probe closed it: traffic back at once, no probe of our own."""
        if self.state is not BreakerState.CLOSED:
            log.info("route_recovered", route=self.route, after=self.reason, by="another worker")
        self.state, self.failures, self.reason, self._probing = BreakerState.CLOSED, 0, None, False


@dataclass
class RateLimiter:
    """A token bucket of ``rate`` tokens per second where priority callers are served first.

    ``clock`` and ``sleep`` are the real ones unless a test gives a fake pair that keeps time.
    """

    rate: float
    burst: float | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _tokens: float = field(init=False)
    _updated: float = field(init=False)
    _priority_waiting: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.burst = self.burst or max(1.0, self.rate / 10)
        self._tokens = self.burst
        self._updated = self.clock()

    async def acquire(self, *, priority: bool = False, count: int = 1) -> float:
        """Wait for ``count`` tokens (a batch call's requests); returns the seconds waited."""
        waited = 0.0
        for _ in range(count - 1):
            waited += await self.acquire(priority=priority)
        if priority:
            self._priority_waiting += 1
        try:
            while True:
                now = self.clock()
                assert self.burst is not None
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1 and (priority or not self._priority_waiting):
                    self._tokens -= 1
                    return waited
                delay = max((1 - self._tokens) / self.rate, 0.001)
                await self.sleep(delay)
                waited += delay
        finally:
            if priority:
                self._priority_waiting -= 1


class Pacer(Protocol):
    """What paces a route: this process's ``RateLimiter``, or the workers' shared one."""

    async def acquire(self, *, priority: bool = False, count: int = 1) -> float: ...
