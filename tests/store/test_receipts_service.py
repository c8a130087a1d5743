"""``Receipts.receive`` on the real store (SQLite and PostgreSQL): which message a receipt is for,
what of it is stored, the complaint it may count, and the signal to the journey that waits.

The status machine's orderings are in ``test_receipt_ordering.py``; this module pins everything
around them. Expected values are written out, not computed with the code under test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import workflow
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.compliance.complaints import ComplaintRecorder
from activities.receipts import Receipt, Receipts
from nudge.models import MessageStatus, MessageUpdate
from nudge.store import Complaint, Message, MessageStatusChange, session_factory

S = MessageStatus
CN, OTHER = "+8613800138000", "+8613900139000"


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
async def service(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Receipts]:
    """No journey waits for these receipts (``notify_receipt`` is off), so nothing is signalled."""
    yield Receipts(client=await Client.connect("127.0.0.1:1", lazy=True), sessions=sessions)


async def add(sessions: async_sessionmaker[AsyncSession], **fields: Any) -> Message:
    key = uuid.uuid4().hex
    values: dict[str, Any] = {
        "idempotency_key": f"receipts/{key}",
        "workflow_id": f"wf-{key}",
        "journey": "cart_abandonment",
        "step": "send:cart_reminder",
        "customer_id": f"c-{key}",
        "template": "cart_reminder",
        "category": "marketing",
        "to": CN,
        "status": "submitted",
        "provider": "aliyun",
        "provider_message_id": f"biz-{key}",
    }
    message = Message(**(values | fields))
    async with sessions() as session:
        session.add(message)
        await session.commit()
    return message


async def row(sessions: async_sessionmaker[AsyncSession], message_id: str) -> Message:
    async with sessions() as session:
        found = await session.get(Message, message_id)
    assert found is not None
    return found


async def changes(sessions: async_sessionmaker[AsyncSession]) -> list[MessageStatusChange]:
    async with sessions() as session:
        return list(
            (await session.exec(select(MessageStatusChange).order_by(col(MessageStatusChange.id)))).all()
        )


def receipt(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "provider": "aliyun",
        "message_id": None,
        "provider_message_id": None,
        "status": S.DELIVERED,
        "error_code": None,
        "at": None,
        "raw": {"report": "DELIVERED"},
    }
    return values | fields


async def test_a_receipt_moves_its_own_message_and_no_other(
    sessions: async_sessionmaker[AsyncSession], service: Receipts
) -> None:
    """Two messages wait in ``submitted``; a receipt for one (by our id) moves that one only,
    keeps the carrier's code, its time and its raw fields."""
    mine, other = await add(sessions), await add(sessions)
    at = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    applied = await service.receive(
        **receipt(
            message_id=mine.id, status=S.UNDELIVERED, error_code="MK:0001", at=at, raw={"err": "MK:0001"}
        )
    )
    assert applied is True
    assert ((await row(sessions, mine.id)).status, (await row(sessions, mine.id)).error_code) == (
        "undelivered",
        "MK:0001",
    )
    assert (await row(sessions, other.id)).status == "submitted"
    [change] = await changes(sessions)
    assert (change.message_id, change.status, change.error_code, change.applied) == (
        mine.id,
        "undelivered",
        "MK:0001",
        True,
    )
    assert (change.at, change.raw) == (at, {"err": "MK:0001"})


async def test_a_receipt_without_a_code_keeps_the_code_already_recorded(
    sessions: async_sessionmaker[AsyncSession], service: Receipts
) -> None:
    """``sent`` with no code after an earlier code: the code stays (and the status moves)."""
    message = await add(sessions, error_code="30003")
    assert await service.receive(**receipt(message_id=message.id, status=S.SENT, provider="aliyun"))
    assert ((await row(sessions, message.id)).status, (await row(sessions, message.id)).error_code) == (
        "sent",
        "30003",
    )


async def test_a_batch_receipt_is_matched_by_the_shared_id_and_its_number(
    sessions: async_sessionmaker[AsyncSession], service: Receipts
) -> None:
    """An Aliyun batch gives two numbers one BizId: the receipt for OTHER moves OTHER's message."""
    first = await add(sessions, provider_message_id="biz-batch", to=CN)
    second = await add(sessions, provider_message_id="biz-batch", to=OTHER)
    assert await service.receive(**receipt(provider_message_id="biz-batch", to=OTHER))
    assert [(await row(sessions, m.id)).status for m in (first, second)] == ["submitted", "delivered"]


async def test_our_id_is_trusted_only_for_the_same_provider_and_number(
    sessions: async_sessionmaker[AsyncSession], service: Receipts
) -> None:
    """A receipt naming our id but coming from another provider, or for another number, does not
    move that message; the provider's own id (with the number) still finds the right one."""
    target = await add(sessions, provider="tencent", provider_message_id="serial-1", to=CN)
    assert not await service.receive(**receipt(provider="twilio", message_id=target.id))
    assert not await service.receive(**receipt(provider="tencent", message_id=target.id, to=OTHER))
    assert (await row(sessions, target.id)).status == "submitted"
    assert await service.receive(
        **receipt(provider="tencent", message_id="not-ours", provider_message_id="serial-1", to=CN)
    )
    assert (await row(sessions, target.id)).status == "delivered"
    # The same provider id under another provider finds nothing.
    again = await add(sessions, provider="tencent", provider_message_id="serial-2")
    assert not await service.receive(**receipt(provider="aliyun", provider_message_id="serial-2"))
    assert (await row(sessions, again.id)).status == "submitted"


async def test_an_erased_customers_receipt_keeps_nothing_of_theirs(
    sessions: async_sessionmaker[AsyncSession], service: Receipts
) -> None:
    """A message without a number (its customer erased) still moves, but the raw receipt is not kept."""
    message = await add(sessions, to=None)
    assert await service.receive(**receipt(message_id=message.id, raw={"phone_number": "13800138000"}))
    [change] = await changes(sessions)
    assert (change.status, change.raw) == ("delivered", {})


async def test_a_receipt_for_no_known_message_is_kept_unmatched(
    sessions: async_sessionmaker[AsyncSession], service: Receipts
) -> None:
    """Nobody has this provider id yet (the send's answer is not stored): kept for later, raw included."""
    assert not await service.receive(**receipt(provider_message_id="biz-early", raw={"biz_id": "biz-early"}))
    [change] = await changes(sessions)
    assert (change.message_id, change.provider_message_id, change.applied, change.raw) == (
        None,
        "biz-early",
        False,
        {"biz_id": "biz-early"},
    )


class RacedReceipts(Receipts):
    """The send's answer is recorded just after the receipt's read: the read finds nothing."""

    @staticmethod
    async def _match(session: Any, receipts: Sequence[Any]) -> list[Any]:
        return [None] * len(receipts)


async def test_a_send_recorded_while_the_receipt_was_stored_gets_it_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The receipt's read missed the message; after storing it unmatched, the service looks again
    by the provider's id, attaches it and applies it (True)."""
    raced = RacedReceipts(client=await Client.connect("127.0.0.1:1", lazy=True), sessions=sessions)
    message = await add(sessions, provider_message_id="biz-race")
    other = await add(sessions, provider="tencent", provider_message_id="biz-race")
    assert await raced.receive(**receipt(provider_message_id="biz-race", status=S.FAILED)) is True
    assert [(await row(sessions, m.id)).status for m in (message, other)] == ["failed", "submitted"]
    [change] = await changes(sessions)
    assert (change.message_id, change.applied) == (message.id, True)
    # Nothing recorded under that id at all: nothing to attach, not applied.
    assert await raced.receive(**receipt(provider_message_id="biz-none")) is False


async def test_a_complaint_code_counts_against_the_message_and_another_code_does_not(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Twilio 30007 (carrier filtering) on a marketing message is a complaint of that message;
    30003 (unreachable) is not, and neither is 30007 from a provider that does not list it."""
    recorder = ComplaintRecorder(sessions)
    service = Receipts(
        client=await Client.connect("127.0.0.1:1", lazy=True), sessions=sessions, complaints=recorder
    )
    filtered = await add(sessions, provider="twilio", provider_message_id="SM1")
    unreachable = await add(sessions, provider="twilio", provider_message_id="SM2")
    elsewhere = await add(sessions, provider="aliyun", provider_message_id="B3")
    for message, code in ((filtered, "30007"), (unreachable, "30003"), (elsewhere, "30007")):
        await service.receive(
            **receipt(
                provider=message.provider,
                provider_message_id=message.provider_message_id,
                status=S.UNDELIVERED,
                error_code=code,
            )
        )
    async with sessions() as session:
        complaints = (await session.exec(select(Complaint))).all()
    assert [(c.message_id, c.kind, c.code) for c in complaints] == [(filtered.id, "provider_code", "30007")]


@workflow.defn(name="ReceiptListener", sandboxed=False)
class Listener:
    """Stands in for a journey: records the ``message`` signals it gets."""

    def __init__(self) -> None:
        self.updates: list[MessageUpdate] = []

    @workflow.signal(name="message")
    def message(self, update: MessageUpdate) -> None:
        self.updates.append(update)

    @workflow.run
    async def run(self) -> list[MessageUpdate]:
        await workflow.wait_condition(lambda: bool(self.updates))
        return self.updates


async def test_the_journey_that_asked_is_signalled_the_receipt(
    sessions: async_sessionmaker[AsyncSession], env: WorkflowEnvironment
) -> None:
    """A message sent with ``notify_receipt`` gets its receipt as a ``message`` signal: our id,
    ``receipt``, the status and the code, once; also when the send was recorded mid-receipt."""
    queue = f"receipts-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[Listener]):
        for service_class in (Receipts, RacedReceipts):
            handle = await env.client.start_workflow(
                Listener.run, id=f"listener-{uuid.uuid4().hex[:8]}", task_queue=queue
            )
            message = await add(sessions, workflow_id=handle.id, notify_receipt=True)
            service = service_class(client=env.client, sessions=sessions)
            kwargs = receipt(provider_message_id=message.provider_message_id, status=S.UNDELIVERED)
            assert await service.receive(**(kwargs | {"error_code": "MK:0001", "to": CN}))
            updates = await handle.result()
            assert updates == [
                MessageUpdate(
                    message_id=message.id, kind="receipt", status=S.UNDELIVERED, error_code="MK:0001"
                )
            ]


async def test_a_message_sent_without_notify_receipt_signals_nobody(
    sessions: async_sessionmaker[AsyncSession], env: WorkflowEnvironment
) -> None:
    """The same receipt for a message sent without ``notify_receipt``: the journey gets nothing
    (an event then ends it, to show it was still waiting)."""
    queue = f"receipts-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[Listener]):
        handle = await env.client.start_workflow(
            Listener.run, id=f"listener-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        message = await add(sessions, workflow_id=handle.id, notify_receipt=False)
        service = Receipts(client=env.client, sessions=sessions)
        assert await service.receive(**receipt(message_id=message.id))
        marker = MessageUpdate(message_id="marker", kind="click", status=None, error_code=None)
        await handle.signal("message", marker)
        assert await handle.result() == [marker]


class Signals:
    """A Temporal client that records the ``message`` signals sent to workflows."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, MessageUpdate]] = []

    def get_workflow_handle(self, workflow_id: str) -> Any:
        sent = self.sent

        class Handle:
            async def signal(self, name: str, update: MessageUpdate) -> None:
                sent.append((workflow_id, update))

        return Handle()


async def test_a_broadcasts_receipts_are_never_signalled(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A broadcast's message moves on its receipt but its workflow gets no signal, even sent
    with ``notify_receipt``; a journey's message sent the same way gets its one signal."""
    signals = Signals()
    service = Receipts(client=cast(Client, signals), sessions=sessions)
    broadcast = await add(
        sessions, workflow_id="broadcast:b1", broadcast_id="b1", journey="broadcast", notify_receipt=True
    )
    journey = await add(sessions, workflow_id="journey:j1", notify_receipt=True)
    applied = await service.receive_many(
        [
            Receipt("aliyun", broadcast.id, None, S.DELIVERED, None, None, {}),
            Receipt("aliyun", journey.id, None, S.DELIVERED, None, None, {}),
        ]
    )
    assert applied == [True, True]
    assert [(await row(sessions, m.id)).status for m in (broadcast, journey)] == ["delivered", "delivered"]
    assert signals.sent == [
        ("journey:j1", MessageUpdate(message_id=journey.id, kind="receipt", status=S.DELIVERED))
    ]


async def test_concurrent_requests_are_stored_in_one_transaction(engine: AsyncEngine) -> None:
    """Twenty receipts for twenty messages, each its own request, arriving together: one
    transaction stores them all (a receipt each used to cost two), and every one applies."""
    sessions = session_factory(engine)
    service = Receipts(client=await Client.connect("127.0.0.1:1", lazy=True), sessions=sessions)
    messages = [await add(sessions) for _ in range(20)]
    commits: list[object] = []
    count = commits.append
    event.listen(engine.sync_engine, "commit", count)
    try:
        applied = await asyncio.gather(*(service.receive(**receipt(message_id=m.id)) for m in messages))
    finally:
        event.remove(engine.sync_engine, "commit", count)
    assert applied == [True] * 20 and len(commits) == 1
    assert {(await row(sessions, m.id)).status for m in messages} == {"delivered"}
    assert len(await changes(sessions)) == 20


class LateAttachFails(RacedReceipts):
    """The read misses the messages, and the second look, after the commit, fails."""

    async def _attach_late(self, *args: Any) -> None:
        raise RuntimeError("database is locked")


async def test_a_failing_second_look_after_the_commit_stores_each_receipt_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Two requests stored in one transaction, then the look for late sends fails: the batch is
    committed, so it is not stored again request by request; each receipt is kept once, unmatched,
    for the send's record or the sweep to attach."""
    service = LateAttachFails(client=await Client.connect("127.0.0.1:1", lazy=True), sessions=sessions)
    await add(sessions, provider_message_id="biz-a")
    await add(sessions, provider_message_id="biz-b")
    applied = await asyncio.gather(
        service.receive(**receipt(provider_message_id="biz-a")),
        service.receive(**receipt(provider_message_id="biz-b")),
    )
    assert applied == [False, False]
    assert sorted(c.provider_message_id or "" for c in await changes(sessions)) == ["biz-a", "biz-b"]


async def test_late_receipts_of_a_shared_batch_id_are_left_to_the_sweep(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Two numbers of one SendBatchSms share its BizId; their receipts were stored before the send
    was recorded. The second look cannot tell which receipt is whose (no number is kept with a
    stored receipt), so it attaches neither: both messages stay as they were, not one of them
    taking the other's status."""
    raced = RacedReceipts(client=await Client.connect("127.0.0.1:1", lazy=True), sessions=sessions)
    first = await add(sessions, provider_message_id="biz-shared", to="+8613900000001")
    second = await add(sessions, provider_message_id="biz-shared", to="+8613900000002")
    applied = await raced.receive_many(
        [
            Receipt("aliyun", None, "biz-shared", S.DELIVERED, None, None, {}, "+8613900000001"),
            Receipt("aliyun", None, "biz-shared", S.UNDELIVERED, "DELIVRD_FAIL", None, {}, "+8613900000002"),
        ]
    )
    assert applied == [False, False]
    assert [(await row(sessions, m.id)).status for m in (first, second)] == ["submitted", "submitted"]
    assert [c.message_id for c in await changes(sessions)] == [None, None]


class SlowStore(Receipts):
    """Holds every store until ``release`` is set."""

    release: asyncio.Event

    async def _store(self, receipts: list[Receipt]) -> Any:
        await self.release.wait()
        return await super()._store(receipts)


async def test_a_request_cancelled_while_stored_still_signals_its_journey(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The provider hangs up while its receipt is being stored: the receipt is stored all the same,
    and so the journey that waits for it is signalled all the same (the redelivery would find it
    applied and signal nobody)."""
    signals = Signals()
    service = SlowStore(client=cast(Client, signals), sessions=sessions)
    service.release = asyncio.Event()
    message = await add(sessions, workflow_id="journey:j2", notify_receipt=True)
    request = asyncio.create_task(service.receive(**receipt(message_id=message.id)))
    await asyncio.sleep(0.05)
    request.cancel()
    service.release.set()
    with pytest.raises(asyncio.CancelledError):
        await request
    for _ in range(100):
        if signals.sent:
            break
        await asyncio.sleep(0.05)
    assert (await row(sessions, message.id)).status == "delivered"
    assert signals.sent == [
        ("journey:j2", MessageUpdate(message_id=message.id, kind="receipt", status=S.DELIVERED))
    ]


class SignalsDown(Signals):
    """A Temporal client out of reach for its first ``down`` signals."""

    def __init__(self, down: int) -> None:
        super().__init__()
        self.down = down

    def get_workflow_handle(self, workflow_id: str) -> Any:
        handle = super().get_workflow_handle(workflow_id)
        outer = self

        class Handle:
            async def signal(self, name: str, update: MessageUpdate) -> None:
                if outer.down > 0:
                    outer.down -= 1
                    raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
                await handle.signal(name, update)

        return Handle()


async def test_a_receipt_stored_but_not_signalled_is_signalled_when_the_provider_sends_it_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Temporal is out of reach when the receipt comes: it is stored and applied, the request
    fails (the provider will send it again), and the redelivery, which applies nothing, signals
    the journey that waits (a journey takes a status it has as a no-op)."""
    signals = SignalsDown(down=1)
    service = Receipts(client=cast(Client, signals), sessions=sessions)
    message = await add(sessions, workflow_id="journey:j3", notify_receipt=True)
    with pytest.raises(RPCError):
        await service.receive(**receipt(message_id=message.id))
    assert (await row(sessions, message.id)).status == "delivered"
    assert signals.sent == []
    assert not await service.receive(**receipt(message_id=message.id))
    update = MessageUpdate(message_id=message.id, kind="receipt", status=S.DELIVERED)
    assert signals.sent == [("journey:j3", update)]


async def test_a_receipt_that_moves_nothing_and_repeats_nothing_signals_nobody(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A late ``sent`` after ``delivered`` neither applies nor repeats the message's status."""
    signals = Signals()
    service = Receipts(client=cast(Client, signals), sessions=sessions)
    message = await add(sessions, workflow_id="journey:j4", notify_receipt=True, status="delivered")
    assert not await service.receive(**receipt(message_id=message.id, status=S.SENT))
    assert signals.sent == []


async def test_only_a_repeated_final_status_for_a_waiting_journey_signals_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A provider's ``queued`` after the send's own ``submitted`` repeats no final status, and a
    broadcast's message or one sent without ``notify_receipt`` waits for nobody: none signals."""
    signals = Signals()
    service = Receipts(client=cast(Client, signals), sessions=sessions)
    queued = await add(sessions, workflow_id="journey:j5", notify_receipt=True)
    broadcast = await add(
        sessions,
        workflow_id="broadcast:b2",
        broadcast_id="b2",
        journey="broadcast",
        notify_receipt=True,
        status="delivered",
    )
    unasked = await add(sessions, workflow_id="journey:j6", status="delivered")
    assert await service.receive_many(
        [
            Receipt("aliyun", queued.id, None, S.SUBMITTED, None, None, {}),
            Receipt("aliyun", broadcast.id, None, S.DELIVERED, None, None, {}),
            Receipt("aliyun", unasked.id, None, S.DELIVERED, None, None, {}),
        ]
    ) == [False, False, False]
    assert signals.sent == []
