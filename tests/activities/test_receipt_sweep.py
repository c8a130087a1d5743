"""The receipt sweep on the real store, the real routes and the simulator's status APIs: messages
whose receipt never came get the status the provider reports, once they are due, and only then.

The simulator drops every receipt here, so only the sweep can learn what became of a message.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.receipt_sweep import ReceiptSweeper
from activities.receipts import Receipts
from activities.routing import Router, build_router
from activities.send import SendActivities
from nudge.contracts import ReceiptSweep, SweepReport
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.routes import RouteConfig
from nudge.store import Message, MessageStatusChange
from tests.activities.sends import CN, US, request, run
from tests.carrier import configure, ledger

AFTER = timedelta(minutes=10)
SWEEP = ReceiptSweep(after=AFTER, within=timedelta(hours=72))
FAILING = "+8613900139000"


class Clock:
    """The sweep's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def receipts(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Receipts]:
    """The gateway's receipts service; no journey waits on these messages, so nothing is signalled."""
    yield Receipts(client=await Client.connect("127.0.0.1:1", lazy=True), sessions=sessions)


async def sweep(sweeper: ReceiptSweeper, request: ReceiptSweep = SWEEP) -> SweepReport:
    report: SweepReport = await ActivityEnvironment().run(sweeper.reconcile_receipts, request)
    return report


async def statuses(sessions: async_sessionmaker[AsyncSession]) -> dict[str, tuple[str, str | None]]:
    async with sessions() as session:
        rows = (await session.exec(select(Message))).all()
    return {m.customer_id: (m.status, m.error_code) for m in rows}


async def sent_and_settled(
    sessions: async_sessionmaker[AsyncSession], router: Router, http: httpx.AsyncClient, carrier: str
) -> None:
    """``cn`` (Aliyun), ``us`` (Twilio) and ``zh`` (Aliyun, a number the carrier fails) are sent;
    their receipts are dropped; the carrier has decided all three."""
    await configure(http, carrier, receipt_drop_rate=1.0, receipt_delay_ms=0, fail_numbers=[FAILING])
    sends = SendActivities(sessions, router, link_base_url="https://n.example", quiet_hours=ALWAYS_OPEN)
    for customer in ("cn", "us", "zh"):
        await run(sends, request(customer, idempotency_key=f"sweep-{customer}"))
    entries = await ledger(http, carrier)
    assert {e["to"] for e in entries} == {CN, US, FAILING}
    assert all(e["status"] != "accepted" for e in entries)


@pytest.mark.usefixtures("customers")
async def test_due_messages_get_the_status_their_provider_reports(
    sessions: async_sessionmaker[AsyncSession],
    router: Router,
    receipts: Receipts,
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """Before ``after`` has passed nothing is asked; after it, Aliyun's QuerySendDetails and
    Twilio's fetch give delivered, and undelivered with the carrier's code, stored as receipts
    that name the status API as their source."""
    await sent_and_settled(sessions, router, http, carrier)
    clock = Clock()
    sweeper = ReceiptSweeper(sessions, router, receipts, clock=clock)
    assert await sweep(sweeper) == SweepReport()
    assert {s for s, _ in (await statuses(sessions)).values()} == {"submitted"}

    clock.now += AFTER + timedelta(seconds=1)
    assert await sweep(sweeper) == SweepReport(checked=3, reconciled=3)
    assert await statuses(sessions) == {
        "cn": ("delivered", None),
        "us": ("delivered", None),
        "zh": ("undelivered", "MK:0001"),
    }
    async with sessions() as session:
        changes = (await session.exec(select(MessageStatusChange))).all()
    found = [(c.provider, c.status, c.applied) for c in changes if c.raw.get("source") == "status_api"]
    assert sorted(found) == [
        ("aliyun", "delivered", True),
        ("aliyun", "undelivered", True),
        ("twilio", "delivered", True),
    ]
    # Final now: nothing is asked again.
    clock.now += AFTER * 2
    assert await sweep(sweeper) == SweepReport()


async def _row(
    sessions: async_sessionmaker[AsyncSession],
    *,
    updated: datetime,
    to: str | None = CN,
    status: str = "submitted",
) -> str:
    key = uuid.uuid4().hex
    async with sessions() as session:
        session.add(
            Message(
                idempotency_key=f"sweep/{key}",
                workflow_id=f"wf-{key}",
                journey="payment_success",
                step="send:payment_success",
                customer_id=f"c-{key}",
                template="payment_success",
                category="transactional",
                to=to,
                status=status,
                provider="simulator",
                route="sim",
                provider_message_id=f"SIM{key}",
                created_at=updated,
                updated_at=updated,
            )
        )
        await session.commit()
    return key


async def test_a_message_is_asked_about_once_per_interval_and_only_within_the_window(
    sessions: async_sessionmaker[AsyncSession], receipts: Receipts, http: httpx.AsyncClient, carrier: str
) -> None:
    """A message the provider has no final status for is asked about again only ``after`` later;
    one older than ``within``, one already final and an erased customer's are never asked about."""
    router = build_router([RouteConfig(name="sim", provider="simulator", base_url=carrier)], http)
    clock = Clock()
    start = clock.now
    await _row(sessions, updated=start - AFTER)
    await _row(sessions, updated=start - timedelta(hours=73))
    await _row(sessions, updated=start - AFTER, status="delivered")
    await _row(sessions, updated=start - AFTER, status="failed")
    await _row(sessions, updated=start - AFTER, to=None)
    sweeper = ReceiptSweeper(sessions, router, receipts, clock=clock)
    assert await sweep(sweeper) == SweepReport(checked=1)
    clock.now = start + AFTER - timedelta(seconds=1)
    assert await sweep(sweeper) == SweepReport()
    clock.now = start + AFTER
    assert await sweep(sweeper) == SweepReport(checked=1)


async def test_a_failing_provider_is_counted_and_the_sweep_goes_on(
    sessions: async_sessionmaker[AsyncSession],
    receipts: Receipts,
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """A route whose status API cannot be reached counts as failed and is asked again next time;
    the sweep still asks the routes that answer, and says when its limit left more behind."""
    router = build_router(
        [
            RouteConfig(name="sim", provider="simulator", base_url=carrier),
            RouteConfig(name="down", provider="simulator", base_url="http://127.0.0.1:9"),
        ],
        http,
    )
    clock = Clock()
    first = await _row(sessions, updated=clock.now - AFTER * 3)
    async with sessions() as session:
        row = (
            await session.exec(select(Message).where(col(Message.idempotency_key) == f"sweep/{first}"))
        ).one()
        row.route = "down"
        session.add(row)
        await session.commit()
    for _ in range(2):
        await _row(sessions, updated=clock.now - AFTER * 2)
    sweeper = ReceiptSweeper(sessions, router, receipts, clock=clock)
    assert await sweep(sweeper, SWEEP.model_copy(update={"limit": 2})) == SweepReport(
        checked=2, failed=1, more=True
    )
    assert await sweep(sweeper, SWEEP.model_copy(update={"limit": 2})) == SweepReport(checked=1)
    clock.now += AFTER
    assert await sweep(sweeper) == SweepReport(checked=3, failed=1)


async def _checked(sessions: async_sessionmaker[AsyncSession], key: str) -> datetime | None:
    async with sessions() as session:
        row = (
            await session.exec(select(Message).where(col(Message.idempotency_key) == f"sweep/{key}"))
        ).one()
    return row.status_checked_at


async def test_a_message_never_asked_about_goes_before_one_asked_before(
    sessions: async_sessionmaker[AsyncSession], receipts: Receipts, http: httpx.AsyncClient, carrier: str
) -> None:
    """An older message the provider had no answer for, due again, does not keep a newer one that
    was never asked about waiting (the sweep takes the longest unasked first)."""
    router = build_router([RouteConfig(name="sim", provider="simulator", base_url=carrier)], http)
    clock = Clock()
    asked = await _row(sessions, updated=clock.now - AFTER * 3)
    async with sessions() as session:
        row = (
            await session.exec(select(Message).where(col(Message.idempotency_key) == f"sweep/{asked}"))
        ).one()
        row.status_checked_at = clock.now - AFTER
        session.add(row)
        await session.commit()
    never = await _row(sessions, updated=clock.now - AFTER * 2)
    sweeper = ReceiptSweeper(sessions, router, receipts, clock=clock)
    assert await sweep(sweeper, SWEEP.model_copy(update={"limit": 1})) == SweepReport(checked=1, more=True)
    assert await _checked(sessions, never) == clock.now
    assert await _checked(sessions, asked) == clock.now - AFTER


@pytest.mark.usefixtures("customers")
async def test_a_status_that_cannot_be_applied_is_counted_and_the_rest_are_applied(
    sessions: async_sessionmaker[AsyncSession],
    router: Router,
    receipts: Receipts,
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """When storing one reconciled status fails (a locked database, a Temporal error), the sweep
    counts it, applies the others, and marks every message asked, so none blocks the queue."""
    await sent_and_settled(sessions, router, http, carrier)

    class Flaky(Receipts):
        async def receive(self, **receipt: Any) -> bool:  # type: ignore[override]
            if receipt["status"] == "undelivered":
                raise RuntimeError("database is locked")
            return await super().receive(**receipt)

    clock = Clock()
    clock.now += AFTER
    flaky = Flaky(client=await Client.connect("127.0.0.1:1", lazy=True), sessions=sessions)
    sweeper = ReceiptSweeper(sessions, router, flaky, clock=clock)
    assert await sweep(sweeper) == SweepReport(checked=3, reconciled=2, failed=1)
    assert await statuses(sessions) == {
        "cn": ("delivered", None),
        "us": ("delivered", None),
        "zh": ("submitted", None),
    }
    async with sessions() as session:
        assert {m.status_checked_at for m in (await session.exec(select(Message))).all()} == {clock.now}
