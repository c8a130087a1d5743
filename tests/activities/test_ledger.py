"""The message ledger's guard against claiming another message's send: a lookup that matched by
content (Twilio's message list) must not mark this message submitted with another one's SID."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.providers.base import Submission
from activities.routing import Router
from activities.send.ledger import Ledger
from nudge.sinks import StreamWebhook
from nudge.store import Message, MessageStatusChange, StreamEvent


def row(key: str, **fields: object) -> Message:
    values: dict[str, object] = {
        "idempotency_key": key,
        "workflow_id": f"wf-{key}",
        "journey": "payment_success",
        "step": "send:payment_success",
        "customer_id": "c1",
        "template": "payment_success",
        "category": "transactional",
    }
    return Message(**(values | fields))


@pytest.fixture
async def stored(sessions: async_sessionmaker[AsyncSession]) -> tuple[Message, Message]:
    """``sent`` went out as SM-sent; ``pending`` is in doubt, with no provider id yet."""
    sent = row("k-sent", provider="twilio", provider_message_id="SM-sent", status="submitted")
    pending = row("k-pending", route="twilio-intl")
    async with sessions() as session:
        session.add_all([sent, pending])
        await session.commit()
    return sent, pending


async def test_a_lookup_hit_on_another_messages_send_is_not_claimed(
    sessions: async_sessionmaker[AsyncSession], stored: tuple[Message, Message]
) -> None:
    """Twilio found a message with the same text to the same number, but it is ``sent``'s: the
    pending one must be sent, not marked submitted as SM-sent."""
    sent, pending = stored
    ledger = Ledger(sessions)
    hit = Submission(provider="twilio", provider_message_id="SM-sent")
    assert await ledger.claimed_by_another(pending, hit) is True
    # The owner itself may claim it (a retry of the same message finds its own send).
    assert await ledger.claimed_by_another(sent, hit) is False
    # A SID nobody holds is free, and so is a hit without a SID (Aliyun's lookup gives none).
    assert (
        await ledger.claimed_by_another(pending, Submission(provider="twilio", provider_message_id="SM-x"))
        is False
    )
    assert (
        await ledger.claimed_by_another(pending, Submission(provider="aliyun", provider_message_id=None))
        is False
    )


async def test_a_cap_reservation_never_overwrites_a_message_that_moved_on(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Two attempts of one send can overlap (a local activity re-run after a lost workflow task):
    one that read the row ``pending`` and finds the cap full must not block it once the other has
    sent it. The reservation only writes to a row still ``pending``."""
    from datetime import UTC, datetime, timedelta

    from nudge.models import FrequencyCap
    from nudge.store import Customer

    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    held = row("k-held", category="marketing", cap_reserved_at=now - timedelta(hours=1), status="submitted")
    moved_on = row("k-race", category="marketing", status="submitted", provider_message_id="SM-race")
    async with sessions() as session:
        session.add_all([Customer(id="c1", phone="+8613800138000"), held, moved_on])
        await session.commit()
    stale = moved_on.model_copy(update={"status": "pending"})  # what the overlapping attempt read
    ledger = Ledger(sessions)
    await ledger.reserve(stale, [FrequencyCap(limit=1, window=timedelta(days=1))], now=now)
    async with sessions() as session:
        after = await session.get(Message, moved_on.id)
    assert after is not None
    assert (after.status, after.reason, after.provider_message_id) == ("submitted", None, "SM-race")


async def test_a_submission_keeps_a_receipt_that_came_first_and_prices_to_six_places(
    sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient
) -> None:
    """Aliyun can push a receipt (matched by our own id) before its send's answer is stored: the
    submission must not move ``delivered`` back (nor blank it). Its cost is segments x price,
    rounded to six decimal places, as the ledger's other prices are."""
    from activities.routing import build_router
    from nudge.routes import RouteConfig

    price = 0.0123456
    [route] = build_router(
        [
            RouteConfig(
                name="sim", provider="simulator", base_url="http://127.0.0.1:9", cost_per_segment=price
            )
        ],
        http,
    ).routes
    early = row("k-early", status="delivered", route="sim")
    fresh = row("k-fresh", route="sim")
    async with sessions() as session:
        session.add_all([early, fresh])
        await session.commit()
    ledger = Ledger(sessions)
    kept = await ledger.record_submission(
        early.id, route, Submission(provider="simulator", provider_message_id="S1")
    )
    sent = await ledger.record_submission(
        fresh.id, route, Submission(provider="simulator", provider_message_id="S2", segments=3)
    )
    assert (kept.status, kept.provider_message_id) == ("delivered", "S1")
    assert (sent.status, sent.segments, sent.cost) == ("submitted", 3, round(3 * price, 6))
    assert sent.cost == 0.037037  # 0.0370368 to six places
    # Each submission leaves its audit row: which message, under which provider id, applied.
    async with sessions() as session:
        changes = (
            await session.exec(select(MessageStatusChange).order_by(col(MessageStatusChange.id)))
        ).all()
    assert [(c.message_id, c.provider, c.provider_message_id, c.status, c.applied) for c in changes] == [
        (early.id, "simulator", "S1", "submitted", True),
        (fresh.id, "simulator", "S2", "submitted", True),
    ]


async def test_a_receipt_that_came_before_its_send_was_recorded_is_applied_by_the_submission(
    sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient
) -> None:
    """A receipt stored unmatched (the provider reported S3 before the send's answer was stored)
    is attached when the submission records S3, and moves the message on to delivered."""
    from activities.routing import build_router
    from nudge.routes import RouteConfig

    [route] = build_router(
        [RouteConfig(name="sim", provider="simulator", base_url="http://127.0.0.1:9")], http
    ).routes
    message = row("k-late-answer", route="sim")
    receipt = MessageStatusChange(
        provider="simulator", provider_message_id="S3", status="delivered", applied=False
    )
    other = MessageStatusChange(provider="twilio", provider_message_id="S3", status="failed", applied=False)
    async with sessions() as session:
        session.add_all([message, receipt, other])
        await session.commit()
    ledger = Ledger(sessions)
    recorded = await ledger.record_submission(
        message.id, route, Submission(provider="simulator", provider_message_id="S3")
    )
    assert recorded.status == "delivered"
    async with sessions() as session:
        attached = await session.get(MessageStatusChange, receipt.id)
        untouched = await session.get(MessageStatusChange, other.id)
    assert attached is not None and (attached.message_id, attached.applied) == (message.id, True)
    assert untouched is not None and untouched.message_id is None  # another provider's S3


@pytest.mark.parametrize("step", ["claim_route", "mark", "defer", "record_submission"])
async def test_what_a_pending_send_waited_for_is_forgotten_once_it_moves_on(
    sessions: async_sessionmaker[AsyncSession], router: Router, step: str
) -> None:
    """The note a lookup grace leaves (shown by ``nudge journeys``) keeps the attempt's time (the
    grace counts from it) and goes once the send moves on: a new route, a failed call, a deferral
    or the provider's answer, so it never describes a wait that is over."""
    message = row("k-wait", route="aliyun-cn")
    async with sessions() as session:
        session.add(message)
        await session.commit()
    ledger = Ledger(sessions)
    await ledger.note_waiting(message.id, "aliyun-cn does not list it yet")
    waiting = await _stored(sessions, message.id)
    assert (waiting.waiting, waiting.updated_at) == ("aliyun-cn does not list it yet", message.updated_at)
    route = router.by_name["aliyun-cn"]
    match step:
        case "claim_route":
            await ledger.claim_route(waiting, route, "Nudge")
        case "mark":
            await ledger.mark(message.id, "not_sent:timeout")
        case "defer":
            await ledger.defer(
                message.id, "isv.BUSINESS_LIMIT_CONTROL", datetime.now(UTC) + timedelta(hours=1)
            )
        case "record_submission":
            await ledger.record_submission(
                message.id, route, Submission(provider="aliyun", provider_message_id="B1")
            )
    assert (await _stored(sessions, message.id)).waiting is None


async def _stored(sessions: async_sessionmaker[AsyncSession], message_id: str) -> Message:
    async with sessions() as session:
        found = await session.get(Message, message_id)
    assert found is not None
    return found


async def test_a_submission_with_a_sink_reads_nothing_in_its_write_transaction_and_publishes_once(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], router: Router
) -> None:
    """With a sink configured, recording the provider's answer still runs only writes while it
    holds the write lock (SQLite's one lock: the transactional lane waits behind it): the first
    submission publishes ``sent`` with the row it wrote, a retry's publishes nothing."""
    sink = StreamWebhook(name="crm", url="https://crm.example/h", secret=SecretStr("a-secret-of-16-chars"))
    message = row("k-sink", route="aliyun-cn")
    async with sessions() as session:
        session.add(message)
        await session.commit()
    ledger = Ledger(sessions, sinks=[sink])
    route = router.by_name["aliyun-cn"]
    written: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not conn.get_execution_options().get("nudge_read_only"):
            written.append(statement.lstrip().split(None, 1)[0].upper())

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        for _ in range(2):
            await ledger.record_submission(
                message.id, route, Submission(provider="aliyun", provider_message_id="B9", segments=2)
            )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)

    assert "SELECT" not in written, written
    async with sessions() as session:
        [sent] = (await session.exec(select(StreamEvent))).all()
    assert (sent.kind, sent.body["message_id"], sent.body["status"]) == ("sent", message.id, "submitted")
    assert (sent.body["provider"], sent.body["provider_message_id"], sent.body["segments"]) == (
        "aliyun",
        "B9",
        2,
    )
