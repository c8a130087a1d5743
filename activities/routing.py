"""Routing: pick the provider route for each message, pace it, and fail over when a route breaks.

- ``Recipient`` is what rules look at: the number's region, prefix and carrier, and the
  customer's tier and language.
- ``CircuitBreaker`` opens after repeated retryable failures, or at once on an account-level error
  (balance, suspension, credentials). After a cool-down it lets one probe through; a success closes
  it again.
- ``RateLimiter`` keeps each route under its TPS. Transactional sends jump the queue, so a
  marketing blast never holds back a payment confirmation.
- ``Router`` turns settings into routes with live adapters, and lists the candidates for a send.

Both keep their state in the worker; with ``NUDGE_SHARED_ROUTE_LIMITS`` (the default)
``activities/route_limits.py`` holds them in the database instead, across every worker process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import httpx
import phonenumbers
from phonenumbers import carrier as pn_carrier
from pydantic import SecretStr

from activities.providers.aliyun import AliyunProvider
from activities.providers.base import Provider
from activities.providers.simulator import SimulatorProvider
from activities.providers.tencent import TencentProvider
from activities.providers.twilio import TwilioProvider
from nudge.errors import NudgeError
from nudge.logging import get_logger
from nudge.models import Category
from nudge.phone import parse_number
from nudge.routes import RouteConfig
from nudge.templates import Template

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Recipient:
    """What routing rules match on."""

    to: str
    region: str | None = None
    tier: str | None = None
    language: str | None = None
    number: phonenumbers.PhoneNumber | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, to: str, *, tier: str | None = None, language: str | None = None) -> Recipient:
        number = parse_number(to)
        region = phonenumbers.region_code_for_number(number) if number is not None else None
        return cls(to=to, region=region, tier=tier, language=language, number=number)

    @property
    def carrier(self) -> str | None:
        """The number's carrier (None where phonenumbers knows none), looked up only for a route
        that has carrier rules: it was a quarter of ``Recipient.of``'s cost in a broadcast."""
        if self.number is None:
            return None
        return pn_carrier.name_for_number(self.number, "en") or None


def matches(config: RouteConfig, recipient: Recipient, category: Category) -> bool:
    """True when every rule the route declares accepts this recipient (an empty rule accepts all)."""
    return (
        (not config.countries or recipient.region in config.countries)
        and (not config.prefixes or any(recipient.to.startswith(p) for p in config.prefixes))
        and (not config.carriers or recipient.carrier in config.carriers)
        and (not config.tiers or recipient.tier in config.tiers)
        and (not config.languages or recipient.language in config.languages)
        and (not config.categories or category in config.categories)
    )


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


@dataclass
class Route:
    config: RouteConfig
    provider: Provider
    breaker: CircuitBreaker
    limiter: Pacer

    @property
    def name(self) -> str:
        return self.config.name

    def supports(self, template: Template) -> bool:
        """Aliyun and Tencent can send only templates approved in their console (with a code)."""
        return (
            self.config.provider not in ("aliyun", "tencent")
            or self.config.provider in template.provider_codes
        )


class NoRoute(NudgeError):
    """No configured route serves this recipient and template."""


class Router:
    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: r.config.priority)
        self.by_name = {route.name: route for route in self.routes}

    def candidates(
        self, recipient: Recipient, template: Template, category: Category, *, forced: str | None = None
    ) -> list[Route]:
        """Routes that may carry this message, best first. Raises ``NoRoute`` when none may."""
        if forced is not None:
            route = self.by_name.get(forced)
            if route is None:
                raise NoRoute(f"unknown route {forced!r}")
            if not route.supports(template):
                raise NoRoute(f"route {forced!r} has no approved code for template {template.code!r}")
            return [route]
        eligible = [r for r in self.routes if matches(r.config, recipient, category) and r.supports(template)]
        if not eligible:
            raise NoRoute(
                f"no route serves {recipient.region or 'this number'} with template {template.code!r}"
            )
        return eligible


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value else ""


def build_provider(
    config: RouteConfig, client: httpx.AsyncClient, *, status_callback: str | None
) -> Provider:
    """The adapter for one route, on the shared HTTP client."""
    match config.provider:
        case "aliyun":
            return AliyunProvider(
                client,
                base_url=config.endpoint,
                access_key_id=config.access_key_id or "",
                access_key_secret=_secret(config.access_key_secret),
                signing=config.aliyun_signing,
                region=config.region,
            )
        case "twilio":
            return TwilioProvider(
                client,
                base_url=config.endpoint,
                account_sid=config.account_sid or "",
                auth_token=_secret(config.auth_token),
                messaging_service_sid=config.messaging_service_sid,
            )
        case "tencent":
            return TencentProvider(
                client,
                base_url=config.endpoint,
                secret_id=config.secret_id or "",
                secret_key=_secret(config.secret_key),
                sdk_app_id=config.sdk_app_id or "",
            )
        case "simulator":
            return SimulatorProvider(client, base_url=config.endpoint, status_callback=status_callback)
    raise ValueError(f"unknown provider {config.provider!r}")


def build_router(
    configs: Sequence[RouteConfig],
    client: httpx.AsyncClient,
    *,
    simulator_callback: str | None = None,
    breaker_threshold: int = 5,
    breaker_cooldown: float = 30.0,
    account_cooldown: float = 300.0,
) -> Router:
    return Router(
        [
            Route(
                config=config,
                provider=build_provider(config, client, status_callback=simulator_callback),
                breaker=CircuitBreaker(
                    config.name,
                    threshold=breaker_threshold,
                    cooldown=breaker_cooldown,
                    account_cooldown=account_cooldown,
                ),
                limiter=RateLimiter(config.tps),
            )
            for config in configs
        ]
    )
