"""Route limits shared through the database (``activities/route_limits.py``), each "worker" here a
limiter or a breaker on an engine of its own, as separate processes have: together they keep a
route's rate, transactional sends still go first, and a breaker one opens is open for the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.breaker import BreakerState, CircuitBreaker, RateLimiter
from activities.route_limits import HORIZON, BreakerSync, SharedRateLimiter
from activities.routing import Route, Router
from nudge.routes import RouteConfig
from nudge.store import create_engine
from nudge.store.limits import backlog, reserve


@pytest.fixture
async def engines(engine: AsyncEngine, db_url: str) -> AsyncIterator[list[AsyncEngine]]:
    """Three engines on the upgraded database: three workers' pools."""
    more = [create_engine(db_url) for _ in range(3)]
    yield more
    for each in more:
        await each.dispose()


async def test_three_workers_together_keep_the_route_at_its_rate(engines: list[AsyncEngine]) -> None:
    """60 sends, 20 from each of three workers, on a route of 50 per second: however they
    interleave they take at least (60 - burst) / 50 seconds, where three limiters of their own
    would take a third of that."""
    rate, each = 50.0, 20
    limiters = [SharedRateLimiter("r1", rate, engine) for engine in engines]
    done: list[float] = []

    async def sends(limiter: SharedRateLimiter) -> None:
        for _ in range(each):
            await limiter.acquire()
            done.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(sends(limiter) for limiter in limiters))
    burst = max(1.0, rate / 10)
    assert len(done) == 3 * each
    assert max(done) - started >= (3 * each - burst - 1) / rate


async def test_a_batch_call_reserves_its_requests_at_once(engines: list[AsyncEngine]) -> None:
    """A transactional batch call of 30 requests on a fresh route of 100/s books 0.3 s of it in
    one reservation: the route is then booked that far ahead for every worker."""
    limiter = SharedRateLimiter("r2", 100.0, engines[0])
    await limiter.acquire(count=30, priority=True)
    ahead = await backlog(engines[1], "r2")
    assert 0.2 <= ahead <= 0.3


async def test_marketing_stops_reserving_at_the_horizon_and_transactional_still_reserves(
    engines: list[AsyncEngine],
) -> None:
    """Marketing reservations stop once the route is booked ``HORIZON`` ahead; a transactional one
    is then taken at once, behind no more than that."""
    rate = 20.0
    cost, tolerance = 1 / rate, max(1.0, rate / 10) / rate
    waits = []
    for _ in range(100):
        if (wait := await reserve(engines[0], "r3", cost, tolerance, HORIZON)) is None:
            break
        waits.append(wait)
    assert HORIZON * rate <= len(waits) < 100  # it booked up to the horizon, then refused
    priority = await reserve(engines[1], "r3", cost, tolerance, float("inf"))
    assert priority is not None and priority <= HORIZON + 2 * cost + 0.2


def _router(name: str, **breaker: float) -> Router:
    """A router whose one route is never called: only its breaker and limiter matter here."""
    config = RouteConfig(name=name, provider="simulator", tps=10)
    route = Route(
        config=config,
        provider=None,  # type: ignore[arg-type]
        breaker=CircuitBreaker(name, **breaker),  # type: ignore[arg-type]
        limiter=RateLimiter(10),
    )
    return Router([route])


async def test_a_breaker_one_worker_opens_is_open_for_the_others_until_a_probe_closes_it(
    engines: list[AsyncEngine],
) -> None:
    here, there = _router("r4"), _router("r4")
    mine, theirs = BreakerSync(engines[0], here, every=0), BreakerSync(engines[1], there, every=0)
    mine.attach()
    theirs.attach()
    breaker = here.routes[0].breaker
    breaker.trip("isv.AMOUNT_NOT_ENOUGH: balance")
    await mine.aclose()  # its write is done
    await theirs.refresh()
    other = there.routes[0].breaker
    assert (other.state, other.reason, other.allow()) == (
        BreakerState.OPEN,
        "isv.AMOUNT_NOT_ENOUGH: balance",
        False,
    )
    assert other.remaining > 200  # the account cool-down (300 s), not a retryable one's

    breaker.state = BreakerState.HALF_OPEN  # its cool-down passed: the probe went through
    breaker.record_success()
    await mine.aclose()
    await theirs.refresh()
    assert (other.state, other.allow()) == (BreakerState.CLOSED, True)


async def test_a_short_open_elsewhere_never_cuts_an_account_pause_short(engines: list[AsyncEngine]) -> None:
    """Worker A pauses the route for an account error (5 minutes); worker B then opens it for its
    own retryable failures with a cool-down of 0.3 s. Once B's would have run out, A's pause still
    holds, here and for B: the shared row keeps the later end, and a row that merely ran out is no
    probe's close."""
    here, there = _router("r5"), _router("r5", cooldown=0.3, threshold=1)
    mine, theirs = BreakerSync(engines[0], here, every=0), BreakerSync(engines[1], there, every=0)
    mine.attach()
    theirs.attach()
    paused, failing = here.routes[0].breaker, there.routes[0].breaker
    paused.trip("isv.AMOUNT_NOT_ENOUGH: balance")
    for _ in range(5):  # its in-flight sends fail too: the pause is not shortened to 30 s
        paused.record_failure("isp.SYSTEM_ERROR")
    assert paused.remaining > 200
    await mine.aclose()
    failing.record_failure("isp.RAM_PERMISSION_DENY")
    await theirs.aclose()
    await asyncio.sleep(0.5)
    await mine.refresh()
    await theirs.refresh()
    assert (paused.state, paused.allow()) == (BreakerState.OPEN, False)
    assert paused.remaining > 200
    assert failing.state is BreakerState.OPEN and failing.remaining > 200
