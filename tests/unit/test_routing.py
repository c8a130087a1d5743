"""Routing rules, circuit breakers and the priority rate limiter (no servers)."""

from __future__ import annotations

import asyncio
import heapq

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

from activities.breaker import BreakerState, CircuitBreaker, RateLimiter
from activities.routing import NoRoute, Recipient, build_router, matches
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

    async def run(self, *tasks: asyncio.Task[object], max_wakeups: int = 1000) -> None:
        """Jump from one sleeper's wake-up to the next until ``tasks`` are done (a caller that
        never gets its token fails the test instead of spinning for ever)."""
        await self.settle()
        for _ in range(max_wakeups):
            if all(task.done() for task in tasks):
                return
            assert self._sleepers, "tasks are stuck with no sleeper to wake"
            self.now = self._sleepers[0][0]
            while self._sleepers and self._sleepers[0][0] <= self.now:
                heapq.heappop(self._sleepers)[2].set_result(None)
            await self.settle()
        raise AssertionError(f"tasks still waiting after {max_wakeups} wake-ups")


class Ticker:
    """A clock for one caller at a time: ``sleep`` moves it on by the delay and records it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        assert len(self.slept) < 100, "the limiter keeps sleeping without ever granting a token"
        self.slept.append(delay)
        self.now += delay


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


async def test_rate_limiter_serves_priority_first() -> None:
    """With marketing callers queued, a transactional caller gets the next token."""
    clock = Clock()
    limiter = RateLimiter(20, burst=1, clock=clock, sleep=clock.sleep)
    await clock.run(asyncio.create_task(limiter.acquire()))  # empty the bucket
    order: list[str] = []

    waits: dict[str, tuple[float, float]] = {}

    async def take(name: str, priority: bool) -> None:
        started = clock.now
        # A marketing caller uses the default: priority is what a caller asks for, never assumed.
        waited = await (limiter.acquire(priority=True) if priority else limiter.acquire())
        waits[name] = (waited, clock.now - started)
        order.append(name)

    marketing = [asyncio.create_task(take(f"m{i}", False)) for i in range(5)]
    await clock.settle()  # all five are waiting for the next token, due in 50 ms
    transactional = asyncio.create_task(take("t", True))
    await clock.run(*marketing, transactional)
    assert order[0] == "t"
    assert sorted(order) == ["m0", "m1", "m2", "m3", "m4", "t"]
    # One token every 50 ms: the last of the six gets its token 300 ms after the bucket emptied,
    # and what each caller reports waiting is the time it spent waiting, over every sleep.
    assert clock.now == pytest.approx(1000.3, abs=0.01)  # give or take float rounding
    for name, (waited, elapsed) in waits.items():
        assert waited == pytest.approx(elapsed), name


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


def test_breaker_cool_down_ends_exactly_on_time() -> None:
    """The probe is allowed once the cool-down has fully passed, not a moment before, and a
    vanished probe gives way exactly one cool-down later."""
    clock = Clock()
    breaker = CircuitBreaker("r", threshold=1, cooldown=30, clock=clock)
    breaker.record_failure("Throttling.User")
    clock.now += 29.5
    assert not breaker.allow()
    clock.now += 0.5
    assert breaker.allow()  # 30 s after opening: the probe
    clock.now += 29.5
    assert not breaker.allow()
    clock.now += 0.5
    assert breaker.allow()  # 30 s after that probe left without a word


def test_breaker_opened_by_failures_keeps_the_last_reason() -> None:
    """A breaker opened by a run of failures says which error opened it."""
    breaker = CircuitBreaker("r", threshold=2, clock=Clock())
    breaker.record_failure("isp.SYSTEM_ERROR")
    assert breaker.reason is None
    breaker.record_failure("Throttling.User")
    assert (breaker.state, breaker.reason) == (BreakerState.OPEN, "Throttling.User")


def test_breaker_success_starts_the_failure_count_again() -> None:
    """Failures must come in a row: a success in between resets the count and the reason."""
    clock = Clock()
    breaker = CircuitBreaker("r", threshold=3, cooldown=30, clock=clock)
    breaker.record_failure("Throttling.User")
    breaker.record_failure("Throttling.User")
    breaker.record_success()
    assert (breaker.state, breaker.failures, breaker.reason) == (BreakerState.CLOSED, 0, None)
    breaker.record_failure("Throttling.User")
    breaker.record_failure("Throttling.User")
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure("Throttling.User")
    assert breaker.state is BreakerState.OPEN
    # After a probe's success the route is closed, with nothing left over from the outage.
    clock.now += 30
    assert breaker.allow()
    breaker.record_success()
    assert (breaker.state, breaker.failures, breaker.reason) == (BreakerState.CLOSED, 0, None)


def test_breaker_success_of_a_call_from_before_the_outage_keeps_it_open() -> None:
    """A send that started before the breaker opened and then succeeds does not close it; only
    the probe after the cool-down may."""
    clock = Clock()
    breaker = CircuitBreaker("r", account_cooldown=300, clock=clock)
    breaker.trip("isv.ACCOUNT_ABNORMAL")
    breaker.record_success()
    assert (breaker.state, breaker.reason) == (BreakerState.OPEN, "isv.ACCOUNT_ABNORMAL")
    assert not breaker.allow()


def test_breaker_logs_each_transition_once() -> None:
    """Ops see one route_opened per outage (not one per failed call), one route_probing per
    cool-down and one route_recovered when the probe succeeds; a healthy success logs nothing."""
    clock = Clock()
    breaker = CircuitBreaker("r", threshold=1, cooldown=30, clock=clock)
    with capture_logs() as logs:
        breaker.record_success()
        breaker.record_failure("Throttling.User")
        breaker.record_failure("Throttling.User")  # a call that was already under way
        breaker.trip("isv.AMOUNT_NOT_ENOUGH")  # so was this one
        clock.now += 300
        assert breaker.allow()
        breaker.record_success()
    assert [(e["event"], e.get("route")) for e in logs] == [
        ("route_opened", "r"),
        ("route_paused", "r"),
        ("route_probing", "r"),
        ("route_recovered", "r"),
    ]
    assert logs[0]["reason"] == "Throttling.User" and logs[3]["after"] == "isv.AMOUNT_NOT_ENOUGH"


@pytest.mark.parametrize(
    ("rate", "burst", "immediate"),
    [(100, None, 10), (30, None, 3), (5, None, 1), (8, 4, 4)],
    ids=["tenth-of-100", "tenth-of-30", "at-least-one", "explicit-burst"],
)
async def test_rate_limiter_burst_is_a_tenth_of_a_second(
    rate: float, burst: float | None, immediate: int
) -> None:
    """A fresh bucket holds a tenth of a second's tokens (at least one) unless told otherwise:
    that many go at once, and the next one waits."""
    clock = Ticker()
    limiter = RateLimiter(rate, burst=burst, clock=clock, sleep=clock.sleep)
    for _ in range(immediate):
        assert await limiter.acquire() == 0.0
    assert clock.slept == []
    assert await limiter.acquire() >= 1 / rate - 1e-9


async def test_rate_limiter_waits_exactly_for_the_next_token() -> None:
    """At 8/s a caller waits 125 ms for a whole token, 62.5 ms for the half that is missing,
    and an idle bucket refills only up to its burst (powers of two keep the sums exact)."""
    clock = Ticker()
    limiter = RateLimiter(8, burst=1, clock=clock, sleep=clock.sleep)
    assert [await limiter.acquire() for _ in range(3)] == [0.0, 0.125, 0.125]
    assert (clock.now, clock.slept) == (1000.25, [0.125, 0.125])
    clock.now += 0.0625  # half a token comes in while nobody asks
    assert await limiter.acquire() == 0.0625
    clock.now += 10  # eighty tokens' worth of idle time, but the bucket holds one
    assert [await limiter.acquire() for _ in range(2)] == [0.0, 0.125]


async def test_rate_limiter_priority_callers_leave_no_claim_behind() -> None:
    """Once transactional callers have their tokens, marketing callers are served again, even
    after several transactional callers waited at once."""
    clock = Clock()
    limiter = RateLimiter(20, burst=1, clock=clock, sleep=clock.sleep)
    await clock.run(asyncio.create_task(limiter.acquire(priority=True)))  # empty the bucket
    transactional = [asyncio.create_task(limiter.acquire(priority=True)) for _ in range(2)]
    await clock.run(*transactional)
    assert clock.now == pytest.approx(1000.1, abs=0.01)
    marketing = asyncio.create_task(limiter.acquire())
    await clock.run(marketing)
    assert marketing.result() == pytest.approx(0.05, abs=0.005)


def test_recipient_of_an_unparseable_number_keeps_the_profile() -> None:
    """A number phonenumbers cannot read still carries the customer's tier and language, and its
    text, so that rules on those still apply; it has no region and no carrier."""
    assert Recipient.of("garbage", tier="gold", language="zh") == Recipient(
        to="garbage", region=None, tier="gold", language="zh"
    )
    assert Recipient.of("garbage").carrier is None


def test_recipient_of_a_number_without_carrier_data_has_none() -> None:
    """phonenumbers knows no carrier for US numbers: the carrier is None, not an empty name."""
    recipient = Recipient.of(US, tier="silver", language="en")
    assert recipient == Recipient(to=US, region="US", tier="silver", language="en")
    assert recipient.carrier is None


@pytest.mark.parametrize(
    ("rules", "recipient", "category", "expected"),
    [
        ({"carriers": ["China Mobile"]}, Recipient.of(CN), Category.MARKETING, True),
        ({"languages": ["zh"]}, Recipient.of(CN, language="zh"), Category.MARKETING, True),
        ({"prefixes": ["+86139", "+86138"]}, Recipient.of(CN), Category.MARKETING, True),
        ({"countries": ["CN"], "categories": ["marketing"]}, Recipient.of(US), Category.MARKETING, False),
        ({"prefixes": ["+1"], "categories": ["marketing"]}, Recipient.of(CN), Category.MARKETING, False),
        (
            {"carriers": ["China Unicom"], "tiers": ["gold"]},
            Recipient.of(CN, tier="gold"),
            Category.MARKETING,
            False,
        ),
        (
            {"tiers": ["gold"], "languages": ["zh"]},
            Recipient.of(CN, language="zh"),
            Category.MARKETING,
            False,
        ),
        (
            {"languages": ["en"], "categories": ["marketing"]},
            Recipient.of(CN, language="zh"),
            Category.MARKETING,
            False,
        ),
    ],
    ids=[
        "carrier-match",
        "language-match",
        "any-prefix",
        "country-fails",
        "prefix-fails",
        "carrier-fails",
        "tier-fails",
        "language-fails",
    ],
)
def test_matches_requires_every_rule_not_just_the_last(
    rules: dict[str, list[str]], recipient: Recipient, category: Category, expected: bool
) -> None:
    """A recipient that passes a later rule is still refused by an earlier one it fails."""
    assert matches(route("r", **rules), recipient, category) is expected


async def test_router_sorts_routes_by_priority_whatever_the_order_given() -> None:
    """Routes configured out of order are tried lowest priority number first."""
    async with httpx.AsyncClient() as http:
        router = build_router(
            [route("c", priority=30), route("a", priority=10), route("b", priority=20)], http
        )
    assert [r.name for r in router.routes] == ["a", "b", "c"]
    assert sorted(router.by_name) == ["a", "b", "c"] and router.by_name["b"].config.priority == 20
    payment = get_template("payment_success")
    assert [r.name for r in router.candidates(Recipient.of(US), payment, Category.MARKETING)] == [
        "a",
        "b",
        "c",
    ]


async def test_router_category_rules_pick_the_lane() -> None:
    """A route kept for transactional traffic carries payments, never marketing."""
    async with httpx.AsyncClient() as http:
        router = build_router(
            [route("otp", categories=["transactional"], priority=1), route("bulk", priority=2)], http
        )
    payment = get_template("payment_success")
    assert [r.name for r in router.candidates(Recipient.of(US), payment, Category.TRANSACTIONAL)] == [
        "otp",
        "bulk",
    ]
    assert [r.name for r in router.candidates(Recipient.of(US), payment, Category.MARKETING)] == ["bulk"]


async def test_router_no_route_for_an_unreadable_number_says_this_number() -> None:
    """Without a region to name, the refusal says "this number" and names the template."""
    async with httpx.AsyncClient() as http:
        router = build_router([route("cn-only", countries=["CN"])], http)
    with pytest.raises(NoRoute) as refused:
        router.candidates(Recipient.of("garbage"), get_template("payment_success"), Category.MARKETING)
    assert str(refused.value) == "no route serves this number with template 'payment_success'"


async def test_build_router_defaults_and_overrides() -> None:
    """Each route gets its own breaker (5 failures, 30 s, 300 s after an account error unless
    told otherwise) and a limiter at its own TPS."""
    configs = [route("fast", tps=500), route("slow", tps=2)]
    async with httpx.AsyncClient() as http:
        default = build_router(configs, http)
        tuned = build_router(configs, http, breaker_threshold=2, breaker_cooldown=7, account_cooldown=70)
    assert [
        (
            r.name,
            r.breaker.route,
            r.breaker.threshold,
            r.breaker.cooldown,
            r.breaker.account_cooldown,
            r.limiter.rate,
        )
        for r in default.routes
    ] == [("fast", "fast", 5, 30.0, 300.0, 500), ("slow", "slow", 5, 30.0, 300.0, 2)]
    assert [(r.breaker.threshold, r.breaker.cooldown, r.breaker.account_cooldown) for r in tuned.routes] == [
        (2, 7, 70),
        (2, 7, 70),
    ]
    assert default.routes[0].breaker is not default.routes[1].breaker
