"""The compliance gate on the real store and simulator: consent, caps and unreachable numbers,
with property tests for the invariants (no send to a suppressed number, no marketing without
consent, caps never exceeded when sends race)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance import consent
from nudge.models import Category, FrequencyCap, MessageStatus, SendDecision, SendRequest
from nudge.phone import phone_hash
from nudge.quiet_hours import DEFAULT_WINDOWS
from nudge.store import SUPPRESS_ALL, ConsentIn, Customer, Message, Suppression, suppress
from tests.activities.conftest import GateFactory
from tests.activities.sends import run
from tests.carrier import ledger
from tests.customers import add_customers, new_customer

DAY = timedelta(hours=24)
NO_CAPS: list[FrequencyCap] = []


def marketing(customer: str, n: int = 1, *, workflow: str | None = None, **overrides: Any) -> SendRequest:
    workflow_id = workflow or f"journey:cart_abandonment:{customer}:k{n}"
    fields: dict[str, Any] = {
        "idempotency_key": f"{workflow_id}/run/{n}",
        "workflow_id": workflow_id,
        "journey": "cart_abandonment",
        "step": "send:cart_reminder",
        "customer_id": customer,
        "template": "cart_reminder",
        "params": {"name": "Ada", "cart_url": "https://shop.example.com/c"},
    }
    return SendRequest(**(fields | overrides))


def transactional(customer: str, n: int = 1) -> SendRequest:
    return SendRequest(
        idempotency_key=f"journey:payment_success:{customer}:o{n}/run/1",
        workflow_id=f"journey:payment_success:{customer}:o{n}",
        journey="payment_success",
        step="send:payment_success",
        customer_id=customer,
        template="payment_success",
        params={"order_id": f"o{n}", "amount": "9.90"},
        category=Category.TRANSACTIONAL,
    )


_NUMBERS = itertools.count(uuid.uuid4().int % 10**7)
US_NUMBERS = (f"+1415{n % 10**7:07d}" for n in _NUMBERS)
"""Distinct numbers within a run: examples share the carrier's ledger, which is read by number."""


def unique_phone() -> str:
    return f"+86139{next(_NUMBERS) % 10**8:08d}"


# ----- consent -------------------------------------------------------------------------------


async def test_consent_marketing_needs_it_transactional_does_not(
    make_sends: GateFactory,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """Without a recorded consent a cart reminder is blocked `no_consent` and never reaches the
    carrier; the payment confirmation to the same customer goes."""
    sends = make_sends(caps=NO_CAPS)
    phone = unique_phone()
    await add_customers(sessions, new_customer("c1", phone), consented=False)

    refused = await run(sends, marketing("c1"))
    confirmed = await run(sends, transactional("c1"))

    assert (refused.decision, refused.reason) == (SendDecision.BLOCKED, "no_consent")
    assert confirmed.decision is SendDecision.SENT
    assert [e["body"][:16] for e in await ledger(http, carrier, to=phone)] == ["Payment received"]


async def test_consent_withdrawn_blocks_marketing_with_its_source(
    make_sends: GateFactory,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """Consent granted then withdrawn: the first reminder goes, the next is blocked with the
    withdrawal's source, and the audit trail keeps both events in order."""
    sends = make_sends(caps=NO_CAPS)
    phone = unique_phone()
    await add_customers(sessions, new_customer("c1", phone))
    assert (await run(sends, marketing("c1", 1))).decision is SendDecision.SENT

    async with sessions() as session:
        await consent.record(session, "c1", "withdrawn", ConsentIn(source="support_email"))
        await session.commit()
    refused = await run(sends, marketing("c1", 2))

    assert (refused.decision, refused.reason) == (SendDecision.BLOCKED, "consent_withdrawn:support_email")
    assert len(await ledger(http, carrier, to=phone)) == 1
    async with sessions() as session:
        trail = await consent.history(session, "c1")
    assert [(e.action, e.source) for e in trail] == [
        ("granted", "signup_form"),
        ("withdrawn", "support_email"),
    ]


# ----- unreachable numbers -------------------------------------------------------------------


async def test_unreachable_number_gets_nothing_of_any_kind(
    sends: Any,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """When the carrier calls a number invalid, it is suppressed for everything: a later payment
    confirmation to it is blocked `unreachable:` without a call to the carrier."""
    await add_customers(sessions, new_customer("c1", "13800138000"))  # not E.164: the carrier refuses it

    first = await run(sends, marketing("c1"))
    confirmation = await run(sends, transactional("c1"))

    assert first.reason == "provider:invalid_number"
    assert (confirmation.decision, confirmation.reason) == (
        SendDecision.BLOCKED,
        "unreachable:provider:invalid_number",
    )
    async with sessions() as session:
        row = await session.get(Suppression, phone_hash("13800138000"))
    assert row is not None and row.scope == SUPPRESS_ALL
    assert await ledger(http, carrier, to="13800138000") == []


async def test_suppress_widens_an_opt_out_and_never_narrows_unreachable(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """An invalid-number report widens an opt-out to every message; a later opt-out keeps it so."""
    async with sessions() as session:
        assert await suppress(session, "+8613800138000", reason="reply:STOP", source="aliyun")
        assert await suppress(session, "+8613800138000", reason="provider:x", source="t", scope=SUPPRESS_ALL)
        assert not await suppress(session, "+8613800138000", reason="reply:TD", source="aliyun")
        await session.commit()
        row = await session.get(Suppression, phone_hash("+8613800138000"))
    assert row is not None and (row.scope, row.reason) == (SUPPRESS_ALL, "provider:x")


# ----- frequency caps ------------------------------------------------------------------------


async def test_caps_cap_marketing_per_customer_and_say_when_they_free(
    make_sends: GateFactory,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """With 1 marketing a day, the second reminder (another journey) is capped until a day after
    the first; a payment confirmation is not counted; a day later a reminder goes again."""
    now = [datetime(2026, 11, 25, 2, 0, tzinfo=UTC)]
    sends = make_sends(caps=[FrequencyCap(limit=1, window=DAY)], clock=lambda: now[0])
    phone = unique_phone()
    await add_customers(sessions, new_customer("c1", phone))

    assert (await run(sends, marketing("c1", 1))).decision is SendDecision.SENT
    now[0] += timedelta(hours=3)
    capped = await run(sends, marketing("c1", 2))
    assert (capped.decision, capped.reason) == (SendDecision.CAPPED, "capped:1/24h per customer")
    assert capped.retry_at == datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    assert (await run(sends, transactional("c1"))).decision is SendDecision.SENT
    # A capped message is final: its retry does not slip through later.
    now[0] += DAY
    assert (await run(sends, marketing("c1", 2))).decision is SendDecision.CAPPED
    assert (await run(sends, marketing("c1", 3))).decision is SendDecision.SENT
    assert len(await ledger(http, carrier, to=phone)) == 3


async def test_caps_per_journey_and_a_journeys_own_stricter_cap(
    make_sends: GateFactory, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A per-journey cap counts that journey's messages over all its runs (another cart is the same
    journey); another journey has its own count; a cap passed by the journey applies on top."""
    sends = make_sends(caps=[FrequencyCap(limit=1, window=DAY, per="journey")])
    await add_customers(sessions, new_customer("c1", unique_phone()))

    assert (await run(sends, marketing("c1", 1, workflow="wf-cart-1"))).decision is SendDecision.SENT
    again = await run(sends, marketing("c1", 2, workflow="wf-cart-2"))
    assert (again.decision, again.reason) == (SendDecision.CAPPED, "capped:1/24h per journey")
    other = marketing("c1", 3, workflow="wf-onboarding", journey="onboarding")
    assert (await run(sends, other)).decision is SendDecision.SENT

    stricter = [FrequencyCap(limit=2, window=timedelta(days=7))]
    own = await run(sends, marketing("c1", 4, workflow="wf-x", journey="winback", caps=stricter))
    assert (own.decision, own.reason) == (SendDecision.CAPPED, "capped:2/7d per customer")


async def test_caps_blocked_and_failed_messages_do_not_count(
    make_sends: GateFactory,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """With 1 marketing a day: a message the gate blocked (no consent) and one the carrier refused
    (failed, after it had taken its place under the cap) hold no place; the next one goes."""
    sends = make_sends(caps=[FrequencyCap(limit=1, window=DAY)])
    phone = unique_phone()
    await add_customers(sessions, new_customer("c1", phone), consented=False)
    assert (await run(sends, marketing("c1", 1))).reason == "no_consent"
    async with sessions() as session:
        await consent.record(session, "c1", "granted", ConsentIn(source="checkout_form"))
        await session.commit()

    # Over the carrier's 1600 characters: refused with a 4xx, a permanent failure at the provider.
    too_long = marketing("c1", 2, params={"name": "A" * 1600, "cart_url": "https://shop.example.com/c"})
    refused = await run(sends, too_long)
    async with sessions() as session:
        failed = await session.get(Message, refused.message_id)
    assert failed is not None and (failed.status, failed.reason) == (MessageStatus.FAILED, "provider:422")
    assert failed.cap_reserved_at is not None  # it did take a place before the carrier refused it

    assert (await run(sends, marketing("c1", 3))).decision is SendDecision.SENT
    assert len(await ledger(http, carrier, to=phone)) == 1


async def test_caps_count_only_the_customers_own_messages_of_that_category(
    make_sends: GateFactory,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """With 1 marketing and 1 transactional a day: each of two customers gets a reminder, the
    first customer's confirmation goes (the reminder is not counted under the transactional cap),
    and only their second confirmation is capped."""
    caps = [
        FrequencyCap(limit=1, window=DAY),
        FrequencyCap(limit=1, window=DAY, category=Category.TRANSACTIONAL),
    ]
    sends = make_sends(caps=caps)
    first, second = unique_phone(), unique_phone()
    await add_customers(sessions, new_customer("c1", first), new_customer("c2", second))

    decisions = [
        (await run(sends, marketing("c1"))).decision,
        (await run(sends, marketing("c2"))).decision,
        (await run(sends, transactional("c1", 1))).decision,
    ]
    again = await run(sends, transactional("c1", 2))

    assert decisions == [SendDecision.SENT] * 3
    assert (again.decision, again.reason) == (SendDecision.CAPPED, "capped:1/24h per customer")
    assert len(await ledger(http, carrier, to=first)) == 2
    assert len(await ledger(http, carrier, to=second)) == 1


async def test_caps_a_full_cap_blocks_only_its_own_message(
    make_sends: GateFactory, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A reminder deferred by quiet hours (still pending) is untouched when another customer's
    reminder meets a full cap: it stays deferred, holding no place under the caps."""
    at = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # 03:00 in Los Angeles, 18:00 in China
    sends = make_sends(
        caps=[FrequencyCap(limit=0, window=DAY)], quiet_hours=DEFAULT_WINDOWS, clock=lambda: at
    )
    await add_customers(
        sessions,
        new_customer("night", next(US_NUMBERS), timezone="America/Los_Angeles"),
        new_customer("day", unique_phone()),
    )

    deferred = await run(sends, marketing("night"))
    capped = await run(sends, marketing("day"))

    assert (deferred.decision, capped.decision) == (SendDecision.DEFERRED, SendDecision.CAPPED)
    async with sessions() as session:
        row = await session.get(Message, deferred.message_id)
    assert row is not None
    assert (row.status, row.reason, row.cap_reserved_at) == ("pending", "deferred:quiet_hours", None)
    assert row.defer_until == datetime(2026, 6, 1, 15, 0, tzinfo=UTC)  # 08:00 PDT


async def test_caps_reservation_waits_for_the_customers_row_lock(
    make_sends: GateFactory, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """On PostgreSQL a capped send counts under the customer's row lock: while another
    transaction holds that row, the send waits for it (and goes once it is released)."""
    if sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("the customer's row lock is PostgreSQL's; SQLite takes the database write lock")
    sends = make_sends(caps=[FrequencyCap(limit=1, window=DAY)])
    await add_customers(sessions, new_customer("c1", unique_phone()))
    async with sessions() as holder, sessions() as observer:
        await holder.exec(select(Customer.id).where(Customer.id == "c1").with_for_update())
        send = asyncio.ensure_future(run(sends, marketing("c1")))
        deadline = asyncio.get_running_loop().time() + 60
        waiting = 0
        while not send.done() and not waiting and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
            rows = await observer.exec(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%FOR UPDATE%' AND pid <> pg_backend_pid()"
                )
            )
            waiting = rows.one()[0]
            await observer.rollback()
        assert not send.done(), "the send did not wait for the customer's row lock"
        assert waiting, "the send never waited on a lock"
        await holder.rollback()
    assert (await send).decision is SendDecision.SENT


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(racers=st.integers(min_value=2, max_value=10), limit=st.integers(min_value=0, max_value=4))
async def test_caps_hold_when_sends_for_one_customer_race(
    make_sends: GateFactory,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
    racers: int,
    limit: int,
) -> None:
    """N sends for one customer from N journeys at once, each through its own gate (as on N
    workers): exactly min(N, limit) reach the carrier, the rest are capped."""
    customer, phone = f"race-{uuid.uuid4().hex[:8]}", unique_phone()
    await add_customers(sessions, new_customer(customer, phone))
    cap = [FrequencyCap(limit=limit, window=DAY)]
    gates = [make_sends(caps=cap) for _ in range(racers)]

    results = await asyncio.gather(
        *(run(gate, marketing(customer, n, workflow=f"wf-{customer}-{n}")) for n, gate in enumerate(gates))
    )

    decisions = sorted(r.decision.value for r in results)
    assert decisions.count("sent") == min(racers, limit), decisions
    assert decisions.count("capped") == racers - min(racers, limit), decisions
    assert len(await ledger(http, carrier, to=phone)) == min(racers, limit)


# ----- the invariants, as properties ---------------------------------------------------------

STANDINGS = st.fixed_dictionaries(
    {
        "consent": st.sampled_from(["none", "granted", "withdrawn"]),
        "suppression": st.sampled_from(["none", "opt_out", "unreachable"]),
        "category": st.sampled_from([Category.MARKETING, Category.TRANSACTIONAL]),
    }
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(customers=st.lists(STANDINGS, min_size=1, max_size=6))
async def test_gate_never_sends_to_suppressed_or_unconsented_marketing(
    make_sends: GateFactory,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
    customers: list[dict[str, Any]],
) -> None:
    """For any mix of consent, suppression and category: marketing reaches the carrier only with
    consent and no suppression; transactional only to a reachable number; the decision says why."""
    sends = make_sends(caps=NO_CAPS)
    tag = uuid.uuid4().hex[:8]
    for i, standing in enumerate(customers):
        customer, phone = f"p-{tag}-{i}", unique_phone()
        await add_customers(sessions, new_customer(customer, phone), consented=False)
        async with sessions() as session:
            if standing["consent"] != "none":
                await consent.record(session, customer, "granted", ConsentIn(source="form"))
            if standing["consent"] == "withdrawn":
                await consent.record(session, customer, "withdrawn", ConsentIn(source="email"))
            if standing["suppression"] != "none":
                scope = SUPPRESS_ALL if standing["suppression"] == "unreachable" else None
                await suppress(session, phone, reason="test", source="test", scope=scope)
            await session.commit()
        request = (
            marketing(customer) if standing["category"] is Category.MARKETING else transactional(customer)
        )

        result = await run(sends, request)

        # The first check that refuses gives the reason: reachability, then (for marketing)
        # suppression, then consent.
        is_marketing = standing["category"] is Category.MARKETING
        expected: tuple[SendDecision, str | None]
        if standing["suppression"] == "unreachable":
            expected = (SendDecision.BLOCKED, "unreachable:test")
        elif is_marketing and standing["suppression"] == "opt_out":
            expected = (SendDecision.SUPPRESSED, "suppressed")
        elif is_marketing and standing["consent"] == "none":
            expected = (SendDecision.BLOCKED, "no_consent")
        elif is_marketing and standing["consent"] == "withdrawn":
            expected = (SendDecision.BLOCKED, "consent_withdrawn:email")
        else:
            expected = (SendDecision.SENT, None)
        assert (result.decision, result.reason) == expected, standing
        delivered = await ledger(http, carrier, to=phone)
        assert len(delivered) == (1 if expected[0] is SendDecision.SENT else 0), standing


async def test_gate_decisions_are_recorded_on_the_message(
    make_sends: GateFactory, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A capped send is a message row with status blocked, its reason and when the cap frees."""
    sends = make_sends(caps=[FrequencyCap(limit=0, window=DAY)])
    await add_customers(sessions, new_customer("c1", unique_phone()))
    result = await run(sends, marketing("c1"))
    async with sessions() as session:
        [row] = (await session.exec(select(Message))).all()
    assert (row.status, row.reason) == (MessageStatus.BLOCKED, "capped:0/24h per customer")
    assert result.retry_at is None  # a cap of 0 never frees


ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "America/Chicago",
    "Pacific/Honolulu",
    "America/Anchorage",
]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    moment=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    zone=st.sampled_from(ZONES),
    category=st.sampled_from([Category.MARKETING, Category.TRANSACTIONAL]),
)
async def test_gate_never_sends_marketing_in_quiet_hours(
    make_sends: GateFactory,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
    moment: datetime,
    zone: str,
    category: Category,
) -> None:
    """For any instant and US zone (the profile's): marketing reaches the carrier only between
    08:00 and 21:00 there, else it is deferred to a moment inside the window; transactional goes."""
    sends = make_sends(caps=NO_CAPS, quiet_hours=DEFAULT_WINDOWS, clock=lambda: moment)
    customer, phone = f"q-{uuid.uuid4().hex[:8]}", next(US_NUMBERS)
    await add_customers(sessions, new_customer(customer, phone, timezone=zone))
    request = marketing(customer) if category is Category.MARKETING else transactional(customer)

    result = await run(sends, request)

    local = moment.astimezone(ZoneInfo(zone))
    open_now = 8 <= local.hour < 21
    if category is Category.TRANSACTIONAL or open_now:
        assert result.decision is SendDecision.SENT, (local, result)
    else:
        assert result.decision is SendDecision.DEFERRED and result.retry_at is not None
        opens = result.retry_at.astimezone(ZoneInfo(zone))
        assert 8 <= opens.hour < 21 and timedelta(0) < result.retry_at - moment <= timedelta(hours=13)
    assert len(await ledger(http, carrier, to=phone)) == (1 if result.decision is SendDecision.SENT else 0)


@pytest.mark.parametrize(
    ("then", "expected"),
    [
        ("stop", (SendDecision.SUPPRESSED, "suppressed", "blocked")),
        ("carrier-refuses", (SendDecision.BLOCKED, "provider:invalid_number", "failed")),
    ],
    ids=["stop-before-the-window-opens", "carrier-refuses-when-it-opens"],
)
async def test_quiet_hours_deferred_message_refused_later_has_no_retry_time(
    make_sends: GateFactory,
    sessions: async_sessionmaker[AsyncSession],
    then: str,
    expected: tuple[SendDecision, str, str],
) -> None:
    """A reminder deferred at 23:00 UTC (a number the carrier will refuse, judged in UTC) and
    retried when the window opens: refused then (STOP meanwhile, or the carrier's 4xx), its result
    is final, with no time to try again."""
    phone = (
        "1380013" + f"{next(_NUMBERS) % 10**4:04d}"
    )  # not E.164: quiet hours in UTC, the carrier refuses it
    now = [datetime(2026, 6, 1, 23, 0, tzinfo=UTC)]
    sends = make_sends(caps=NO_CAPS, quiet_hours=DEFAULT_WINDOWS, clock=lambda: now[0])
    await add_customers(sessions, new_customer("c1", phone))
    deferred = await run(sends, marketing("c1"))
    assert (deferred.decision, deferred.retry_at) == (
        SendDecision.DEFERRED,
        datetime(2026, 6, 2, 8, 0, tzinfo=UTC),
    )
    if then == "stop":
        async with sessions() as session:
            await suppress(session, phone, reason="reply:STOP", source="simulator")
            await session.commit()
    now[0] = datetime(2026, 6, 2, 8, 0, tzinfo=UTC)

    result = await run(sends, marketing("c1"))

    decision, reason, status = expected
    assert (result.decision, result.reason, result.status.value, result.retry_at) == (
        decision,
        reason,
        status,
        None,
    )
