"""The send gate over real provider protocols: routes, failover, deferral, opt-outs, reconciling.

The real ``send_message`` with the real router and adapters, against the carrier simulator's
Aliyun, Tencent and Twilio APIs over loopback, on the real store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.exceptions import ApplicationError

from activities.breaker import BreakerState
from activities.routing import Router
from activities.send import SendActivities
from nudge.models import Category, FrequencyCap, MessageStatus, SendDecision, SendRequest
from nudge.phone import phone_hash
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.store import Suppression
from tests.activities.sends import CN, PRIMARY, US, message, request, run
from tests.carrier import configure, ledger
from tests.faults import HELD_ANSWER_S


@pytest.fixture
def sends(sessions: async_sessionmaker[AsyncSession], router: Router) -> SendActivities:
    """The gate on the local routes (this module's, not the simulator route), with Twilio's status
    callback, at any hour."""
    return SendActivities(
        sessions,
        router,
        link_base_url="https://nudge.example.com",
        status_callbacks={"twilio": "https://nudge.example.com/v1/webhooks/twilio/status"},
        quiet_hours=ALWAYS_OPEN,
    )


@pytest.mark.usefixtures("customers")
async def test_rules_pick_aliyun_for_mainland_and_twilio_elsewhere(
    sends: SendActivities, sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, carrier: str
) -> None:
    """A mainland number goes out on Aliyun with 【Nudge】 counted; a US number on Twilio."""
    cn = await run(sends, request("cn"))
    us = await run(sends, request("us"))
    assert (cn.route, cn.provider, us.route, us.provider) == ("aliyun-cn", "aliyun", "twilio-intl", "twilio")
    entries = {e["to"]: e for e in await ledger(http, carrier)}
    assert entries[CN]["body"].startswith("【Nudge】Payment received")
    assert entries[US]["signature"] == "+15005550006"
    assert cn.cost == pytest.approx(0.045 * cn.segments)


@pytest.mark.usefixtures("customers")
async def test_language_picks_the_signature_variant(
    sends: SendActivities, http: httpx.AsyncClient, carrier: str
) -> None:
    """A customer whose language is zh gets the route's 努济 signature."""
    await run(sends, request("zh"))
    [entry] = await ledger(http, carrier)
    assert entry["signature"] == "努济" and entry["body"].startswith("【努济】")


@pytest.mark.usefixtures("customers")
async def test_account_error_fails_over_in_the_same_attempt(
    sends: SendActivities,
    router: Router,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """isv.AMOUNT_NOT_ENOUGH on the primary account pauses that route and the message goes out
    once, on Tencent, within the same activity attempt."""
    await configure(
        http, carrier, faults=[{"provider": "aliyun", "account": PRIMARY, "code": "isv.AMOUNT_NOT_ENOUGH"}]
    )
    result = await run(sends, request())
    assert (result.decision, result.route) == (SendDecision.SENT, "tencent-cn")
    assert [e["provider"] for e in await ledger(http, carrier)] == ["tencent"]
    assert router.by_name["aliyun-cn"].breaker.state is BreakerState.OPEN
    row = await message(sessions)
    assert (row.route, row.provider, row.status) == ("tencent-cn", "tencent", "submitted")
    # The next message skips the paused route without calling it.
    await run(sends, request("zh", idempotency_key="k2"))
    assert [e["provider"] for e in await ledger(http, carrier)] == ["tencent", "tencent"]


@pytest.mark.usefixtures("customers")
async def test_retryable_errors_open_the_breaker_then_traffic_moves(
    sends: SendActivities, router: Router, http: httpx.AsyncClient, carrier: str
) -> None:
    """Throttling fails the attempt (Temporal retries); after two in a row the breaker opens and
    the retry goes to the next route."""
    await configure(
        http, carrier, faults=[{"provider": "aliyun", "account": PRIMARY, "code": "Throttling.User"}]
    )
    for attempt in (1, 2):
        with pytest.raises(ApplicationError) as failure:
            await run(sends, request(), attempt=attempt)
        assert failure.value.type == "RetryableProviderError" and not failure.value.non_retryable
        assert failure.value.message.startswith("aliyun-cn Throttling.User: ")
    breaker = router.by_name["aliyun-cn"].breaker
    assert (breaker.state, breaker.reason) == (BreakerState.OPEN, "Throttling.User")
    result = await run(sends, request(), attempt=3)
    assert result.route == "tencent-cn"
    assert len(await ledger(http, carrier)) == 1


@pytest.mark.usefixtures("customers")
async def test_frequency_limit_defers_without_failing(
    sends: SendActivities, sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, carrier: str
) -> None:
    """isv.BUSINESS_LIMIT_CONTROL returns DEFERRED with retry_at; the row waits as pending and the
    call after the window sends it."""
    fault = {"provider": "aliyun", "code": "isv.BUSINESS_LIMIT_CONTROL", "message": "触发分钟级流控Permits:1"}
    await configure(http, carrier, faults=[fault])
    deferred = await run(sends, request())
    assert deferred.decision is SendDecision.DEFERRED and deferred.retry_at is not None
    assert deferred.reason == "deferred:isv.BUSINESS_LIMIT_CONTROL"
    row = await message(sessions)
    assert (row.status, row.defer_until) == ("pending", deferred.retry_at)
    await configure(http, carrier, faults=[])
    sent = await run(sends, request())
    assert (sent.decision, sent.message_id) == (SendDecision.SENT, deferred.message_id)
    assert len(await ledger(http, carrier)) == 1


@pytest.mark.usefixtures("customers")
async def test_a_provider_deferral_gives_up_the_place_under_the_caps(
    sessions: async_sessionmaker[AsyncSession], router: Router, http: httpx.AsyncClient, carrier: str
) -> None:
    """A reminder the provider defers a day holds no place under the caps while it waits: another
    reminder goes meanwhile, and when the deferred one comes back the cap of 1 a day holds it."""
    now = [datetime(2026, 11, 25, 2, 0, tzinfo=UTC)]
    sends = SendActivities(
        sessions,
        router,
        link_base_url="https://n.example",
        quiet_hours=ALWAYS_OPEN,
        caps=[FrequencyCap(limit=1, window=timedelta(hours=24))],
        clock=lambda: now[0],
    )

    def reminder(n: int) -> SendRequest:
        params = {"name": "Ada", "cart_url": "https://shop.example.com/c"}
        return request(
            idempotency_key=f"cart-{n}", template="cart_reminder", params=params, category=Category.MARKETING
        )

    fault = {"provider": "aliyun", "code": "isv.BUSINESS_LIMIT_CONTROL", "message": "触发天级流控Permits:10"}
    await configure(http, carrier, faults=[fault])
    assert (await run(sends, reminder(1))).decision is SendDecision.DEFERRED
    await configure(http, carrier, faults=[])
    now[0] += timedelta(hours=23)
    assert (await run(sends, reminder(2))).decision is SendDecision.SENT
    now[0] += timedelta(hours=1, minutes=1)
    late = await run(sends, reminder(1))
    assert (late.decision, late.reason) == (SendDecision.CAPPED, "capped:1/24h per customer")
    assert len(await ledger(http, carrier)) == 1


@pytest.mark.usefixtures("customers")
async def test_twilio_opt_out_blocks_and_suppresses(
    sends: SendActivities, sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, carrier: str
) -> None:
    """21610 (the recipient texted STOP to Twilio) fails the message for good and suppresses the
    number: the row is failed, and a retry, once Twilio would take it, sends nothing."""
    await configure(http, carrier, faults=[{"provider": "twilio", "code": "21610"}])
    result = await run(sends, request("us"))
    assert (result.decision, result.reason) == (SendDecision.BLOCKED, "provider:21610")
    row = await message(sessions)
    assert (row.status, row.error_code) == (MessageStatus.FAILED, "21610")
    async with sessions() as session:
        suppression = await session.get(Suppression, phone_hash(US))
    assert suppression is not None and suppression.reason == "provider:21610"

    await configure(http, carrier, faults=[])
    assert await run(sends, request("us"), attempt=2) == result
    assert await ledger(http, carrier) == []


@pytest.mark.usefixtures("customers")
async def test_lost_answer_is_reconciled_not_resent(
    sends: SendActivities, sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, carrier: str
) -> None:
    """Aliyun accepts but the answer times out: the retry finds it with QuerySendDetails and
    records it; the carrier received it exactly once."""
    await configure(http, carrier, timeout_rate=1.0, timeout_s=HELD_ANSWER_S)
    with pytest.raises(ApplicationError) as failure:
        await run(sends, request())
    assert failure.value.type == "ProviderUnreachable"
    await configure(http, carrier, timeout_rate=0.0)
    result = await run(sends, request(), attempt=2)
    assert (result.decision, result.route, result.status) == (
        SendDecision.SENT,
        "aliyun-cn",
        MessageStatus.SUBMITTED,
    )
    assert len(await ledger(http, carrier)) == 1


@pytest.mark.usefixtures("customers")
async def test_forced_route_and_signature(
    sends: SendActivities, http: httpx.AsyncClient, carrier: str
) -> None:
    """A journey's route= and signature= override the rules."""
    result = await run(sends, request(route="tencent-cn", signature="努济"))
    [entry] = await ledger(http, carrier)
    assert (result.route, entry["provider"], entry["signature"]) == ("tencent-cn", "tencent", "努济")


@pytest.mark.usefixtures("customers")
async def test_unknown_forced_route_blocks_with_reason(
    sends: SendActivities, http: httpx.AsyncClient, carrier: str
) -> None:
    """A route name no one configured blocks the message, saying why; nothing is sent."""
    result = await run(sends, request(route="nope"))
    assert result.decision is SendDecision.BLOCKED
    assert result.reason == "no_route: unknown route 'nope'"
    assert await ledger(http, carrier) == []


@pytest.mark.usefixtures("customers")
async def test_every_route_paused_is_retryable(
    sends: SendActivities, router: Router, http: httpx.AsyncClient, carrier: str
) -> None:
    """When every candidate's breaker is open the attempt fails retryably, naming each route
    with the reason its breaker opened."""
    for route in router.routes:
        route.breaker.trip(f"{route.name} down")
    with pytest.raises(ApplicationError) as failure:
        await run(sends, request())
    assert failure.value.type == "NoRouteAvailable" and not failure.value.non_retryable
    # Every route serves a mainland number (Twilio has no country rule), best first.
    assert failure.value.message.endswith(
        "aliyun-cn (aliyun-cn down), tencent-cn (tencent-cn down), "
        "aliyun-cn-backup (aliyun-cn-backup down), twilio-intl (twilio-intl down)"
    )
    assert await ledger(http, carrier) == []


@pytest.mark.usefixtures("customers")
async def test_retry_after_throttle_then_timeout_reconciles(
    sends: SendActivities, http: httpx.AsyncClient, carrier: str
) -> None:
    """20429 says "not sent"; the next attempt's lost answer must still be reconciled, not resent."""
    await configure(http, carrier, faults=[{"provider": "twilio", "code": "20429"}])
    with pytest.raises(ApplicationError):
        await run(sends, request("us"))
    await configure(http, carrier, faults=[], timeout_rate=1.0, timeout_s=HELD_ANSWER_S)
    with pytest.raises(ApplicationError) as lost:
        await run(sends, request("us"), attempt=2)
    assert lost.value.type == "ProviderUnreachable"
    await configure(http, carrier, timeout_rate=0.0)
    result = await run(sends, request("us"), attempt=3)
    assert (result.decision, result.route) == (SendDecision.SENT, "twilio-intl")
    assert len(await ledger(http, carrier)) == 1


@pytest.mark.usefixtures("customers")
async def test_not_found_counts_only_after_the_lookup_grace(
    sessions: async_sessionmaker[AsyncSession], router: Router, http: httpx.AsyncClient, carrier: str
) -> None:
    """After an ambiguous 5xx, a lookup that finds nothing within Aliyun's 60 s grace fails the
    attempt retryably (ReconcilePending); after the grace the message is sent, once."""
    now = [datetime.now(UTC)]
    sends = SendActivities(
        sessions, router, link_base_url="https://n.example", clock=lambda: now[0], quiet_hours=ALWAYS_OPEN
    )
    await configure(http, carrier, failure_rate=1.0)  # isp.SYSTEM_ERROR, HTTP 500: ambiguous
    with pytest.raises(ApplicationError) as first:
        await run(sends, request())
    assert first.value.type == "RetryableProviderError"
    await configure(http, carrier, failure_rate=0.0)
    with pytest.raises(ApplicationError) as pending:
        await run(sends, request(), attempt=2)
    assert pending.value.type == "ReconcilePending" and not pending.value.non_retryable
    assert pending.value.next_retry_delay is not None
    assert await ledger(http, carrier) == []
    # The grace runs from the attempt's claim on the row (the store's clock), not from when this
    # test began: on a loaded machine the first two attempts may take seconds.
    now[0] = (await message(sessions)).updated_at + timedelta(seconds=61)
    result = await run(sends, request(), attempt=3)
    assert result.decision is SendDecision.SENT
    assert len(await ledger(http, carrier)) == 1


def test_never_reached_only_for_connection_failures() -> None:
    """A refused connection never reached the carrier; a connection dropped mid-request may have,
    even though the aiohttp transport reports both as connect errors."""
    import aiohttp

    from activities.send import never_reached

    def mapped(cause: BaseException, kind: type[httpx.HTTPError]) -> httpx.HTTPError:
        try:
            raise kind("mapped") from cause
        except httpx.HTTPError as exc:
            return exc

    refused = aiohttp.ClientConnectorError(None, OSError(111, "refused"))  # type: ignore[arg-type]
    assert never_reached(mapped(refused, httpx.ConnectError))
    assert not never_reached(mapped(aiohttp.ServerDisconnectedError(), httpx.ConnectTimeout))
    assert not never_reached(httpx.ReadTimeout("slow"))
    assert never_reached(httpx.ConnectError("plain httpx transport"))


@pytest.mark.usefixtures("customers")
async def test_suppressed_number_gets_no_marketing_but_transactional(
    sends: SendActivities, sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, carrier: str
) -> None:
    """A number on the suppression list (stored hashed) gets no marketing message; a payment
    confirmation still goes out."""
    async with sessions() as session:
        session.add(Suppression(phone_hash=phone_hash(CN), reason="reply:STOP", source="aliyun"))
        await session.commit()
    marketing = await run(
        sends,
        request(
            template="cart_reminder",
            params={"name": "Ada", "cart_url": "https://shop.example.com/c"},
            category=Category.MARKETING,
        ),
    )
    assert (marketing.decision, marketing.reason) == (SendDecision.SUPPRESSED, "suppressed")
    confirmation = await run(sends, request(idempotency_key="k-txn"))
    assert confirmation.decision is SendDecision.SENT
    assert [e["template_code"] for e in await ledger(http, carrier)] == ["SMS_480003"]


@pytest.mark.usefixtures("customers")
async def test_quiet_hours_defer_marketing_not_transactional(
    sessions: async_sessionmaker[AsyncSession], router: Router, http: httpx.AsyncClient, carrier: str
) -> None:
    """At 01:00 in Shanghai a cart reminder is deferred until 08:00 there; a payment confirmation
    goes out at once; after 08:00 the deferred reminder goes out, once."""
    now = [datetime(2026, 11, 25, 17, 0, tzinfo=UTC)]  # 01:00 in Shanghai
    sends = SendActivities(sessions, router, link_base_url="https://n.example", clock=lambda: now[0])
    reminder = request(
        template="cart_reminder",
        params={"name": "Ada", "cart_url": "https://shop.example.com/c"},
        category=Category.MARKETING,
    )
    deferred = await run(sends, reminder)
    assert (deferred.decision, deferred.reason) == (SendDecision.DEFERRED, "deferred:quiet_hours")
    assert deferred.retry_at == datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    assert (await run(sends, request(idempotency_key="txn"))).decision is SendDecision.SENT
    now[0] = datetime(2026, 11, 26, 0, 1, tzinfo=UTC)
    sent = await run(sends, reminder)
    assert (sent.decision, sent.message_id) == (SendDecision.SENT, deferred.message_id)
    assert len(await ledger(http, carrier)) == 2


@pytest.mark.usefixtures("customers")
async def test_the_provider_gets_the_template_params_and_the_status_callback(
    sends: SendActivities, http: httpx.AsyncClient, carrier: str
) -> None:
    """Aliyun receives the template's code and each variable's value by name (as TemplateParam);
    Twilio receives the rendered body and the status callback URL this worker was given."""
    await run(sends, request())
    await run(sends, request("us", idempotency_key="wf-us/run/1", workflow_id="wf-us"))
    aliyun = await ledger(http, carrier, to=CN)
    twilio = await ledger(http, carrier, to=US)
    assert [(e["provider"], e["params"]) for e in aliyun] == [
        ("aliyun", {"order_id": "o-1", "amount": "9.90"})
    ]
    assert aliyun[0]["template_code"]
    assert [(e["provider"], e["status_callback"]) for e in twilio] == [
        ("twilio", "https://nudge.example.com/v1/webhooks/twilio/status")
    ]
    assert "o-1" in twilio[0]["body"] and "9.90" in twilio[0]["body"]
