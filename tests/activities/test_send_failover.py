"""The failover loop in the send gate: pacing, claiming a route before calling it, and what each
failure leaves behind for the next attempt.

The real ``send_message`` with real adapters against the carrier simulator over loopback, on the
real store; only the rate limiter's clock and the loss of an answer are the test's own.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError

from activities.breaker import BreakerState, CircuitBreaker, RateLimiter
from activities.compliance.pauses import Scope, Source, pause
from activities.compliance.registry import Registry
from activities.routing import Route, Router, build_provider, build_router
from activities.send import SendActivities
from nudge.models import Category, MessageStatus, SendDecision, SendRequest
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.routes import DEV_ALIYUN_KEYS, RouteConfig, local_routes
from tests.activities.sends import message, request, run
from tests.carrier import configure, ledger
from tests.faults import FaultyTransport
from tests.polling import wait_until

PRIMARY = next(iter(DEV_ALIYUN_KEYS))
CART_PARAMS = {"name": "Ada", "cart_url": "https://shop.example.com/c/1"}


def gate(sessions: async_sessionmaker[AsyncSession], router: Router) -> SendActivities:
    return SendActivities(
        sessions, router, link_base_url="https://n.example", quiet_hours=ALWAYS_OPEN, caps=[]
    )


def cart(customer: str, **overrides: Any) -> SendRequest:
    """A marketing cart reminder."""
    fields: dict[str, Any] = {
        "template": "cart_reminder",
        "category": Category.MARKETING,
        "params": CART_PARAMS,
    }
    return request(customer, **(fields | overrides))


class HeldClock:
    """The rate limiter's clock, which moves only when the test says; sleepers wait for it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleepers: list[asyncio.Future[None]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        woken = asyncio.get_running_loop().create_future()
        self.sleepers.append(woken)
        await woken

    def tick(self, seconds: float) -> None:
        """Move on and wake every sleeper, in the order they went to sleep."""
        self.now += seconds
        woken, self.sleepers = self.sleepers, []
        for future in woken:
            future.set_result(None)


@pytest.mark.usefixtures("customers")
async def test_transactional_send_takes_the_token_before_a_waiting_marketing_send(
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,  # noqa: F811
) -> None:
    """On a route at 1 message/s, a payment confirmation that arrives while a cart reminder waits
    for the next token goes out first; the reminder follows with the token after."""
    clock = HeldClock()
    config = RouteConfig(name="sim", provider="simulator", base_url=carrier, tps=1)
    limiter = RateLimiter(config.tps, clock=clock, sleep=clock.sleep)
    router = Router(
        [Route(config, build_provider(config, http, status_callback=None), CircuitBreaker("sim"), limiter)]
    )
    sends = gate(sessions, router)
    await limiter.acquire()  # the bucket's one token is spent
    reminder = asyncio.create_task(run(sends, cart("us")))
    await wait_until(lambda: len(clock.sleepers) == 1, what="the reminder waits for a token")
    confirmation = asyncio.create_task(run(sends, request("cn")))
    await wait_until(lambda: len(clock.sleepers) == 2, what="the confirmation waits too")

    clock.tick(1.0)  # one token: the reminder is woken first, and must let the confirmation have it
    await wait_until(confirmation.done, what="the confirmation is sent", timeout=5)
    assert not reminder.done()
    assert [e["to"] for e in await ledger(http, carrier)] == ["+8613800138000"]
    while not reminder.done():
        await wait_until(lambda: reminder.done() or bool(clock.sleepers), what="the reminder waits")
        clock.tick(1.0)
    assert (reminder.result().decision, confirmation.result().decision) == (
        SendDecision.SENT,
        SendDecision.SENT,
    )
    assert [e["to"] for e in await ledger(http, carrier)] == ["+8613800138000", "+14155550100"]


@pytest.mark.usefixtures("customers")
async def test_failover_claims_the_next_route_so_a_lost_answer_is_looked_up_there(
    sessions: async_sessionmaker[AsyncSession],
    transport: FaultyTransport,
    http: httpx.AsyncClient,
    carrier: str,  # noqa: F811
) -> None:
    """Aliyun refuses the account, so a zh customer's message moves to Tencent under Tencent's own
    signature and price; Tencent's answer is lost. The row already names Tencent, so the retry
    asks Tencent, finds the message and records it: the carrier got it once."""
    router = build_router(local_routes(carrier), http, breaker_threshold=1)
    sends = gate(sessions, router)
    await configure(
        http, carrier, faults=[{"provider": "aliyun", "account": PRIMARY, "code": "isv.AMOUNT_NOT_ENOUGH"}]
    )
    transport.losing = {"/tencent"}
    with capture_logs() as logs, pytest.raises(ApplicationError) as lost:
        await run(sends, request("zh"))
    assert [(e["route"], e["previous"]) for e in logs if e["event"] == "message_rerouted"] == [
        ("tencent-cn", "aliyun-cn")
    ]
    assert (lost.value.type, lost.value.message) == (
        "ProviderUnreachable",
        "tencent-cn call failed (ReadTimeout); will reconcile and retry",
    )
    row = await message(sessions)
    # Claimed before the call: Tencent's route, signature (no zh variant there) and price.
    assert (row.status, row.route, row.signature, row.currency, row.reason) == (
        MessageStatus.PENDING,
        "tencent-cn",
        "Nudge",
        "CNY",
        None,
    )
    assert row.cost == pytest.approx(0.05 * row.segments)
    aliyun, tencent = router.by_name["aliyun-cn"].breaker, router.by_name["tencent-cn"].breaker
    assert aliyun.state is BreakerState.OPEN and (aliyun.reason or "").startswith("isv.AMOUNT_NOT_ENOUGH: ")
    assert (tencent.state, tencent.reason) == (BreakerState.OPEN, "ReadTimeout")
    [entry] = await ledger(http, carrier)
    assert (entry["provider"], entry["signature"]) == ("tencent", "Nudge")

    transport.losing = set()
    result = await run(sends, request("zh"), attempt=2)
    assert (result.decision, result.route, result.provider) == (SendDecision.SENT, "tencent-cn", "tencent")
    assert result.provider_message_id == entry["provider_id"]
    assert len(await ledger(http, carrier)) == 1


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.usefixtures("customers")
async def test_refused_connection_is_marked_not_sent(
    sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient
) -> None:
    """A route whose connection is refused cannot have the message: the row says not_sent (so
    the retry sends without a lookup), the attempt fails retryably naming the route, and the
    breaker counts each failure by its kind until it opens."""
    config = RouteConfig(name="down", provider="simulator", base_url=f"http://127.0.0.1:{closed_port()}")
    router = build_router([config], http, breaker_threshold=2)
    sends = gate(sessions, router)
    with pytest.raises(ApplicationError) as refused:
        await run(sends, request("us"))
    # httpx-aiohttp reports a refused connection as ConnectTimeout, over aiohttp's connector error.
    assert (refused.value.type, refused.value.message) == (
        "ProviderUnreachable",
        "down unreachable (ConnectTimeout)",
    )
    row = await message(sessions)
    assert (row.status, row.route, row.reason) == (MessageStatus.PENDING, "down", "not_sent:ConnectTimeout")
    # The retry claims the same route again (clearing the mark before the call): no reroute.
    with capture_logs() as logs, pytest.raises(ApplicationError):
        await run(sends, request("us"), attempt=2)
    assert [e for e in logs if e["event"] == "message_rerouted"] == []
    assert (await message(sessions)).reason == "not_sent:ConnectTimeout"
    assert (router.by_name["down"].breaker.state, router.by_name["down"].breaker.reason) == (
        BreakerState.OPEN,
        "ConnectTimeout",
    )


async def pause_route(sessions: async_sessionmaker[AsyncSession], name: str) -> None:
    await pause(sessions, scope=Scope.ROUTE, value=name, reason="test", source=Source.MANUAL, by="test")


@pytest.mark.usefixtures("customers")
async def test_every_route_paused_blocks_with_the_best_routes_pause(
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,  # noqa: F811
) -> None:
    """With each candidate route paused on its own, a reminder is blocked naming the pause of the
    route it would have taken first; nothing is sent."""
    router = build_router(local_routes(carrier), http)
    for route in router.routes:
        await pause_route(sessions, route.name)
    result = await run(gate(sessions, router), cart("cn"))
    assert (result.decision, result.reason) == (SendDecision.BLOCKED, "paused:route=aliyun-cn")
    assert await ledger(http, carrier) == []


@pytest.mark.usefixtures("customers")
async def test_paused_and_broken_routes_are_each_named_with_their_reason(
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,  # noqa: F811
) -> None:
    """A route that is paused and routes whose breakers are open: the attempt fails retryably,
    naming the pause for the one and the breaker's reason for the others."""
    router = build_router(local_routes(carrier), http)
    await pause_route(sessions, "aliyun-cn")
    for route in router.routes[1:]:
        route.breaker.trip(f"{route.name} down")
    with pytest.raises(ApplicationError) as failure:
        await run(gate(sessions, router), cart("cn"))
    assert (failure.value.type, failure.value.message) == (
        "NoRouteAvailable",
        "every route for this message is paused: aliyun-cn (paused:route=aliyun-cn), "
        "tencent-cn (tencent-cn down), aliyun-cn-backup (aliyun-cn-backup down), "
        "twilio-intl (twilio-intl down)",
    )


@pytest.mark.usefixtures("customers")
async def test_signatures_not_approved_skip_routes_and_name_the_best_routes(
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,  # noqa: F811
) -> None:
    """A zh customer's best route signs 努济: with 努济 rejected the routes using it are skipped
    (and logged); with Nudge and the Twilio number rejected too, the message is blocked naming 努济."""
    router = build_router(local_routes(carrier), http)
    registry = Registry(sessions, routes=[route.config for route in router.routes])
    await registry.seed()
    sends = SendActivities(
        sessions, router, link_base_url="https://n.example", registry=registry, quiet_hours=ALWAYS_OPEN
    )
    with capture_logs() as logs:
        await run(sends, request("cn"))
    assert [e for e in logs if e["event"] == "routes_skipped"] == []
    await registry.reject_signature("努济", reason="qualification expired")
    with capture_logs() as logs:
        sent = await run(sends, request("zh"))
    assert sent.route == "tencent-cn"
    assert [e["routes"] for e in logs if e["event"] == "routes_skipped"] == [["aliyun-cn"]]
    for name in ("Nudge", "+15005550006"):
        await registry.reject_signature(name, reason="qualification expired")
    blocked = await run(sends, request("zh", idempotency_key="k2"))
    assert (blocked.decision, blocked.reason) == (SendDecision.BLOCKED, "signature_not_approved:努济")
    assert len(await ledger(http, carrier)) == 2


@pytest.mark.usefixtures("customers")
async def test_category_rules_keep_a_route_for_transactional_traffic(
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,  # noqa: F811
) -> None:
    """A route kept for transactional messages carries the payment confirmation; the cart
    reminder goes on the general route."""
    routes = [
        RouteConfig(
            name="otp",
            provider="simulator",
            base_url=carrier,
            categories=[Category.TRANSACTIONAL],
            priority=1,
        ),
        RouteConfig(name="bulk", provider="simulator", base_url=carrier, priority=2),
    ]
    sends = gate(sessions, build_router(routes, http))
    assert (await run(sends, request("us"))).route == "otp"
    assert (await run(sends, cart("us", idempotency_key="k-cart"))).route == "bulk"


@pytest.mark.usefixtures("customers")
async def test_reconcile_waits_out_the_lookup_grace_to_the_second(
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,  # noqa: F811
) -> None:
    """After an ambiguous failure Aliyun is given 60 s to list the message: 20 s on, the retry
    comes back in 40 s; 59.5 s on, in the 1 s minimum; at 60 s the message is sent, once."""
    now: list[datetime] = []
    router = build_router(local_routes(carrier), http)
    sends = SendActivities(
        sessions, router, link_base_url="https://n.example", quiet_hours=ALWAYS_OPEN, clock=lambda: now[0]
    )
    await configure(http, carrier, failure_rate=1.0)  # isp.SYSTEM_ERROR, HTTP 500: ambiguous
    now.append(datetime.now(UTC))
    with pytest.raises(ApplicationError):
        await run(sends, request())
    await configure(http, carrier, failure_rate=0.0)
    attempted = (await message(sessions)).updated_at
    messages = []
    for after, retry_in in ((20.0, 40.0), (59.5, 1.0)):
        now[0] = attempted + timedelta(seconds=after)
        with pytest.raises(ApplicationError) as pending:
            await run(sends, request(), attempt=2)
        assert pending.value.type == "ReconcilePending"
        assert pending.value.next_retry_delay == timedelta(seconds=retry_in)
        messages.append(pending.value.message)
    assert (
        messages[0]
        == "aliyun-cn does not list the message yet; looking again in 40 s before sending it again"
    )
    assert await ledger(http, carrier) == []
    now[0] = attempted + timedelta(seconds=60)
    assert (await run(sends, request(), attempt=3)).decision is SendDecision.SENT
    assert len(await ledger(http, carrier)) == 1
