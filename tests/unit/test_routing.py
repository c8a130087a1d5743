"""Routing rules, circuit breakers and the priority rate limiter (no servers)."""

from __future__ import annotations

import asyncio
import heapq
import time

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from activities.routing import (
    BreakerState,
    CircuitBreaker,
    NoRoute,
    RateLimiter,
    Recipient,
    build_router,
    matches,
)
from nudge.models import Category
from nudge.routes import RouteConfig, local_routes
from nudge.templates import Template, get_template

CN = "+8613800138000"
US = "+14155550100"


class Clock:
    """A monotonic clock that moves only when the test moves it; ``sleep`` waits on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._slept = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        """Return once the clock has moved ``delay`` on; sleepers due together wake in turn."""
        self._slept += 1
        woken = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + delay, self._slept, woken))
        await woken

    async def settle(self) -> None:
        """Let every task run until it sleeps or ends (no I/O here, so a few loop turns do)."""
        for _ in range(20):
            await asyncio.sleep(0)

    async def run(self, *tasks: asyncio.Task[None]) -> None:
        """Jump from one sleeper's wake-up to the next until ``tasks`` are done."""
        await self.settle()
        while not all(task.done() for task in tasks):
            assert self._sleepers, "tasks are stuck with no sleeper to wake"
            self.now = self._sleepers[0][0]
            while self._sleepers and self._sleepers[0][0] <= self.now:
                heapq.heappop(self._sleepers)[2].set_result(None)
            await self.settle()


def route(name: str, **fields: object) -> RouteConfig:
    return RouteConfig.model_validate({"name": name, "provider": "simulator", **fields})


def test_recipient_of_reads_region_and_carrier() -> None:
    """A mainland 138 number is region CN on China Mobile; a US number is region US."""
    cn = Recipient.of(CN, tier="gold", language="zh")
    assert (cn.region, cn.carrier, cn.tier, cn.language) == ("CN", "China Mobile", "gold", "zh")
    assert Recipient.of(US).region == "US"
    assert Recipient.of("garbage").region is None


@pytest.mark.parametrize(
    ("rules", "recipient", "category", "expected"),
    [
        ({}, Recipient.of(US), Category.MARKETING, True),
        ({"countries": ["CN"]}, Recipient.of(US), Category.MARKETING, False),
        ({"countries": ["CN"]}, Recipient.of(CN), Category.MARKETING, True),
        ({"prefixes": ["+86138"]}, Recipient.of(CN), Category.MARKETING, True),
        ({"prefixes": ["+86139"]}, Recipient.of(CN), Category.MARKETING, False),
        ({"carriers": ["China Unicom"]}, Recipient.of(CN), Category.MARKETING, False),
        ({"tiers": ["gold"]}, Recipient.of(CN, tier="gold"), Category.MARKETING, True),
        ({"tiers": ["gold"]}, Recipient.of(CN), Category.MARKETING, False),
        ({"languages": ["en"]}, Recipient.of(CN, language="zh"), Category.MARKETING, False),
        ({"categories": ["transactional"]}, Recipient.of(CN), Category.MARKETING, False),
        ({"categories": ["transactional"]}, Recipient.of(CN), Category.TRANSACTIONAL, True),
    ],
)
def test_matches_applies_every_declared_rule(
    rules: dict[str, list[str]], recipient: Recipient, category: Category, expected: bool
) -> None:
    """Each rule narrows the route; an empty rule accepts everyone."""
    assert matches(route("r", **rules), recipient, category) is expected


async def test_router_orders_candidates_by_priority_and_filters_templates() -> None:
    """Candidates come best first; Aliyun/Tencent routes need the template's console code."""
    async with httpx.AsyncClient() as http:
        router = build_router(local_routes("http://127.0.0.1:9"), http)
        payment = get_template("payment_success")
        assert [r.name for r in router.candidates(Recipient.of(CN), payment, Category.TRANSACTIONAL)] == [
            "aliyun-cn",
            "tencent-cn",
            "aliyun-cn-backup",
            "twilio-intl",
        ]
        assert [r.name for r in router.candidates(Recipient.of(US), payment, Category.MARKETING)] == [
            "twilio-intl"
        ]
        uncoded = Template("adhoc", "hello", Category.MARKETING)
        assert [r.name for r in router.candidates(Recipient.of(CN), uncoded, Category.MARKETING)] == [
            "twilio-intl"
        ]
        assert [
            r.name
            for r in router.candidates(Recipient.of(CN), payment, Category.MARKETING, forced="tencent-cn")
        ] == ["tencent-cn"]
        with pytest.raises(NoRoute, match="unknown route"):
            router.candidates(Recipient.of(CN), payment, Category.MARKETING, forced="nope")
        with pytest.raises(NoRoute, match="no approved code"):
            router.candidates(Recipient.of(CN), uncoded, Category.MARKETING, forced="aliyun-cn")


async def test_router_without_matching_route_raises_no_route() -> None:
    """A number no route serves is a NoRoute, which the gate turns into a blocked message."""
    async with httpx.AsyncClient() as http:
        router = build_router([route("cn-only", countries=["CN"])], http)
        with pytest.raises(NoRoute, match="no route serves US"):
            router.candidates(Recipient.of(US), get_template("payment_success"), Category.MARKETING)


def test_route_config_requires_provider_credentials() -> None:
    """An Aliyun route without its key, or a Tencent one without its app id, is refused up front."""
    with pytest.raises(ValidationError, match="needs access_key_id, access_key_secret"):
        RouteConfig(name="a", provider="aliyun")
    with pytest.raises(ValidationError, match="needs sdk_app_id"):
        RouteConfig(name="t", provider="tencent", secret_id="id", secret_key=SecretStr("k"))


def test_route_config_hides_secrets() -> None:
    """Secrets never show in a repr or a dump (and so never in logs)."""
    config = RouteConfig(
        name="a", provider="aliyun", access_key_id="AK", access_key_secret=SecretStr("s3cr3t")
    )
    assert "s3cr3t" not in repr(config)
    assert "s3cr3t" not in config.model_dump_json()


def test_breaker_opens_after_threshold_then_probes_and_closes() -> None:
    """Closed -> open after N failures -> one probe after the cool-down -> closed on success."""
    clock = Clock()
    breaker = CircuitBreaker("r", threshold=3, cooldown=30, clock=clock)
    for _ in range(2):
        breaker.record_failure("Throttling.User")
    assert breaker.allow() and breaker.state is BreakerState.CLOSED
    breaker.record_failure("Throttling.User")
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now += 31
    assert breaker.allow()  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # only one probe at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_breaker_trips_at_once_on_account_error_and_reopens_on_failed_probe() -> None:
    """An account-level error opens the breaker for the longer pause; a failed probe reopens it."""
    clock = Clock()
    breaker = CircuitBreaker("r", threshold=5, cooldown=30, account_cooldown=300, clock=clock)
    breaker.trip("isv.AMOUNT_NOT_ENOUGH")
    assert breaker.state is BreakerState.OPEN and breaker.reason == "isv.AMOUNT_NOT_ENOUGH"
    clock.now += 100
    assert not breaker.allow()
    clock.now += 201
    assert breaker.allow()
    breaker.record_failure("isv.AMOUNT_NOT_ENOUGH")
    assert breaker.state is BreakerState.OPEN and not breaker.allow()


async def test_rate_limiter_keeps_to_its_rate() -> None:
    """21 tokens at 100/s (burst 10) take at least 0.1 s."""
    limiter = RateLimiter(100)
    started = time.monotonic()
    for _ in range(21):
        await limiter.acquire()
    assert time.monotonic() - started >= 0.1


async def test_rate_limiter_serves_priority_first() -> None:
    """With marketing callers queued, a transactional caller gets the next token."""
    clock = Clock()
    limiter = RateLimiter(20, burst=1, clock=clock, sleep=clock.sleep)
    await limiter.acquire()  # empty the bucket
    order: list[str] = []

    async def take(name: str, priority: bool) -> None:
        await limiter.acquire(priority=priority)
        order.append(name)

    marketing = [asyncio.create_task(take(f"m{i}", False)) for i in range(5)]
    await clock.settle()  # all five are waiting for the next token, due in 50 ms
    transactional = asyncio.create_task(take("t", True))
    await clock.run(*marketing, transactional)
    assert order[0] == "t"
    assert sorted(order) == ["m0", "m1", "m2", "m3", "m4", "t"]


def test_breaker_probe_that_never_reports_gives_way_to_a_new_one() -> None:
    """A probe whose send was cancelled does not leave the route half-open for ever."""
    clock = Clock()
    breaker = CircuitBreaker("r", threshold=1, cooldown=30, clock=clock)
    breaker.record_failure("Throttling.User")
    clock.now += 31
    assert breaker.allow()  # the probe, which then vanishes
    assert not breaker.allow()
    clock.now += 31
    assert breaker.allow()
