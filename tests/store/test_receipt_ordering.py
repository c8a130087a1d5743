"""The receipt status machine on the real store (SQLite and PostgreSQL): a message only moves
forward, and among final statuses the first one to arrive stays.

The expected outcomes are written out in the tables below, not derived from ``MessageStatus.rank``.
Receipts go through ``Receipts.receive`` (a receipt for a known message) and through
``attach_unmatched`` (receipts stored before the send recorded the provider's id).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import literal_column, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from activities.early_receipts import attach_unmatched, has_unmatched
from activities.receipts import Receipt, Receipts
from nudge.models import MessageStatus
from nudge.store import Message, MessageStatusChange, session_factory

S = MessageStatus

# (status the message has, receipts in order of arrival, status it ends with, which receipts applied)
ORDERINGS: list[tuple[str, list[MessageStatus], str, list[bool]]] = [
    ("submitted", [S.DELIVERED, S.FAILED], "delivered", [True, False]),
    ("submitted", [S.FAILED, S.DELIVERED], "failed", [True, False]),
    ("submitted", [S.DELIVERED, S.UNDELIVERED], "delivered", [True, False]),
    ("submitted", [S.UNDELIVERED, S.DELIVERED], "undelivered", [True, False]),
    ("submitted", [S.SENT, S.DELIVERED], "delivered", [True, True]),
    ("submitted", [S.SENT, S.FAILED], "failed", [True, True]),
    ("submitted", [S.DELIVERED, S.SUBMITTED], "delivered", [True, False]),
    ("submitted", [S.DELIVERED, S.SENT], "delivered", [True, False]),
    ("submitted", [S.SENT, S.SUBMITTED], "sent", [True, False]),
    ("submitted", [S.SENT, S.SENT], "sent", [True, False]),
    ("submitted", [S.DELIVERED, S.DELIVERED], "delivered", [True, False]),
    ("submitted", [S.SUBMITTED], "submitted", [False]),
    ("submitted", [S.SENT, S.FAILED, S.DELIVERED], "failed", [True, True, False]),
    ("pending", [S.SUBMITTED, S.SENT, S.DELIVERED], "delivered", [True, True, True]),
    ("sent", [S.SUBMITTED, S.DELIVERED], "delivered", [False, True]),
    ("delivered", [S.FAILED, S.SENT], "delivered", [False, False]),
    ("failed", [S.DELIVERED], "failed", [False]),
]
IDS = [f"{start}:{'-'.join(r.value for r in receipts)}" for start, receipts, _, _ in ORDERINGS]


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
async def service(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Receipts]:
    """The receipts service on the store; no journey waits for these receipts, so nothing is signalled."""
    client = await Client.connect("127.0.0.1:1", lazy=True)
    yield Receipts(client=client, sessions=sessions)


async def _add_message(
    sessions: async_sessionmaker[AsyncSession], *, status: str, provider_message_id: str | None
) -> Message:
    key = uuid.uuid4().hex
    message = Message(
        idempotency_key=f"receipt-ordering/{key}",
        workflow_id=f"journey:cart_abandonment:c-{key}:k1",
        journey="cart_abandonment",
        step="send:cart_reminder",
        customer_id=f"c-{key}",
        template="cart_reminder",
        category="marketing",
        to="+8613800138000",
        status=status,
        provider="tencent",
        provider_message_id=provider_message_id,
    )
    async with sessions() as session:
        session.add(message)
        await session.commit()
    return message


async def _state(sessions: async_sessionmaker[AsyncSession], message_id: str) -> tuple[str, list[bool]]:
    """The message's status, and the applied flag of each receipt stored for it, in arrival order."""
    async with sessions() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        changes = (
            await session.exec(
                select(MessageStatusChange)
                .where(MessageStatusChange.message_id == message_id)
                .order_by(col(MessageStatusChange.id))
            )
        ).all()
    return message.status, [change.applied for change in changes]


async def _receipt(service: Receipts, *, status: MessageStatus, serial: str, message_id: str | None) -> bool:
    return await service.receive(
        provider="tencent",
        message_id=message_id,
        provider_message_id=serial,
        status=status,
        error_code=None,
        at=None,
        raw={"report_status": status.value},
    )


@pytest.mark.parametrize(("start", "receipts", "final", "applied"), ORDERINGS, ids=IDS)
async def test_receipt_moves_a_known_message_only_forward(
    sessions: async_sessionmaker[AsyncSession],
    service: Receipts,
    start: str,
    receipts: list[MessageStatus],
    final: str,
    applied: list[bool],
) -> None:
    """Receipts for a recorded message, in the given order, leave exactly the expected status:
    a later final status never replaces the first one, and nothing moves back."""
    serial = f"2433:{uuid.uuid4().int % 10**12}"
    message = await _add_message(sessions, status=start, provider_message_id=serial)
    returned = [
        await _receipt(service, status=status, serial=serial, message_id=message.id) for status in receipts
    ]
    assert returned == applied
    assert await _state(sessions, message.id) == (final, applied)


# (status the send recorded, receipts stored unmatched before it, status after attaching them,
#  which of them applied, what attach_unmatched returns)
EARLY: list[tuple[str, list[MessageStatus], str, list[bool], MessageStatus | None]] = [
    ("submitted", [S.DELIVERED, S.FAILED], "delivered", [True, False], S.DELIVERED),
    ("submitted", [S.FAILED, S.DELIVERED], "failed", [True, False], S.FAILED),
    ("submitted", [S.UNDELIVERED, S.DELIVERED], "undelivered", [True, False], S.UNDELIVERED),
    ("submitted", [S.SENT, S.DELIVERED], "delivered", [True, True], S.DELIVERED),
    ("submitted", [S.DELIVERED, S.SUBMITTED], "delivered", [True, False], S.DELIVERED),
    ("submitted", [S.DELIVERED, S.SENT], "delivered", [True, False], S.DELIVERED),
    ("submitted", [S.SENT, S.SENT], "sent", [True, False], S.SENT),
    ("submitted", [S.SUBMITTED], "submitted", [False], None),
    ("sent", [S.SUBMITTED], "sent", [False], None),
    ("sent", [S.SUBMITTED, S.DELIVERED], "delivered", [False, True], S.DELIVERED),
    ("delivered", [S.FAILED], "delivered", [False], None),
    ("failed", [S.DELIVERED], "failed", [False], None),
]
EARLY_IDS = [f"{start}:{'-'.join(r.value for r in receipts)}" for start, receipts, *_ in EARLY]


@pytest.mark.parametrize(("start", "receipts", "final", "applied", "moved"), EARLY, ids=EARLY_IDS)
async def test_attach_unmatched_applies_early_receipts_only_forward(
    sessions: async_sessionmaker[AsyncSession],
    service: Receipts,
    start: str,
    receipts: list[MessageStatus],
    final: str,
    applied: list[bool],
    moved: MessageStatus | None,
) -> None:
    """Receipts stored before their send was recorded are attached in arrival order when it is:
    the message ends with the expected status, and a later final status never replaces the first."""
    serial = f"2433:{uuid.uuid4().int % 10**12}"
    for status in receipts:
        assert await _receipt(service, status=status, serial=serial, message_id=None) is False
    message = await _add_message(sessions, status=start, provider_message_id=serial)
    async with sessions() as session:
        row = await session.get(Message, message.id)
        assert row is not None
        assert await attach_unmatched(session, row) == moved
        await session.commit()
    assert await _state(sessions, message.id) == (final, applied)


async def test_receipt_after_attached_early_receipt_does_not_replace_it(
    sessions: async_sessionmaker[AsyncSession], service: Receipts
) -> None:
    """An early delivered receipt, once attached, is not replaced by a failed one arriving later,
    and a late sent one does not move it back."""
    serial = f"2433:{uuid.uuid4().int % 10**12}"
    await _receipt(service, status=S.DELIVERED, serial=serial, message_id=None)
    message = await _add_message(sessions, status="submitted", provider_message_id=serial)
    async with sessions() as session:
        row = await session.get(Message, message.id)
        assert row is not None
        await attach_unmatched(session, row)
        await session.commit()
    assert await _receipt(service, status=S.FAILED, serial=serial, message_id=message.id) is False
    assert await _receipt(service, status=S.SENT, serial=serial, message_id=None) is False
    assert await _state(sessions, message.id) == ("delivered", [True, False, False])


async def test_receipt_for_a_message_recorded_meanwhile_is_attached_in_order(
    sessions: async_sessionmaker[AsyncSession], service: Receipts
) -> None:
    """A receipt matched by the provider's id alone (no message id) follows the same order rules:
    failed after delivered changes nothing."""
    serial = f"2433:{uuid.uuid4().int % 10**12}"
    message = await _add_message(sessions, status="submitted", provider_message_id=serial)
    assert await _receipt(service, status=S.DELIVERED, serial=serial, message_id=None) is True
    assert await _receipt(service, status=S.FAILED, serial=serial, message_id=None) is False
    assert await _state(sessions, message.id) == ("delivered", [True, False])


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_attach_unmatched_follows_arrival_not_heap_order(
    engine: AsyncEngine, service: Receipts
) -> None:
    """Early receipts are attached in the order they arrived even when the table holds them the
    other way round (as after CLUSTER or pg_repack): delivered, then failed, stays delivered."""
    sessions = session_factory(engine)
    serial = f"2433:{uuid.uuid4().int % 10**12}"
    for status in [S.DELIVERED, S.FAILED]:
        assert await _receipt(service, status=status, serial=serial, message_id=None) is False
    # Rewrite the table newest row first, as a reorganisation may leave it.
    async with engine.begin() as conn:
        await conn.execute(text("CREATE INDEX newest_first ON message_status_change (id DESC)"))
        await conn.execute(text("CLUSTER message_status_change USING newest_first"))
    async with sessions() as session:
        heap = (
            await session.exec(
                select(MessageStatusChange.status)
                .where(MessageStatusChange.provider_message_id == serial)
                .order_by(literal_column("ctid"))
            )
        ).all()
    assert list(heap) == ["failed", "delivered"], "the table should hold the later receipt first"

    message = await _add_message(sessions, status="submitted", provider_message_id=serial)
    async with sessions() as session:
        row = await session.get(Message, message.id)
        assert row is not None
        assert await attach_unmatched(session, row) is S.DELIVERED
        await session.commit()
    assert await _state(sessions, message.id) == ("delivered", [True, False])


async def _store_change(
    sessions: async_sessionmaker[AsyncSession],
    *,
    message_id: str | None,
    provider: str,
    provider_message_id: str | None,
    status: MessageStatus,
) -> int:
    """A receipt row as the gateway stores it; returns its id."""
    change = MessageStatusChange(
        message_id=message_id, provider=provider, provider_message_id=provider_message_id, status=status
    )
    async with sessions() as session:
        session.add(change)
        await session.commit()
    assert change.id is not None
    return change.id


async def _changes(
    sessions: async_sessionmaker[AsyncSession], ids: list[int]
) -> list[tuple[str | None, bool]]:
    """Each receipt's message and applied flag, in the order of ``ids``."""
    async with sessions() as session:
        rows = {c.id: c for c in (await session.exec(select(MessageStatusChange))).all()}
    return [(rows[i].message_id, rows[i].applied) for i in ids]


async def test_attach_unmatched_takes_only_unmatched_receipts_of_the_same_provider_and_id(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A delivered receipt already matched to another message, one from another provider with the
    same id, and one for another id are left alone: only the message's own sent receipt attaches."""
    serial = f"2433:{uuid.uuid4().int % 10**12}"
    decoys = [
        await _store_change(
            sessions,
            message_id="another-message",
            provider="tencent",
            provider_message_id=serial,
            status=S.DELIVERED,
        ),
        await _store_change(
            sessions, message_id=None, provider="twilio", provider_message_id=serial, status=S.DELIVERED
        ),
        await _store_change(
            sessions,
            message_id=None,
            provider="tencent",
            provider_message_id=f"{serial}9",
            status=S.DELIVERED,
        ),
    ]
    own = await _store_change(
        sessions, message_id=None, provider="tencent", provider_message_id=serial, status=S.SENT
    )
    message = await _add_message(sessions, status="submitted", provider_message_id=serial)
    async with sessions() as session:
        row = await session.get(Message, message.id)
        assert row is not None
        assert await attach_unmatched(session, row) is S.SENT
        await session.commit()
    assert await _state(sessions, message.id) == ("sent", [True])
    assert await _changes(sessions, [*decoys, own]) == [
        ("another-message", False),
        (None, False),
        (None, False),
        (message.id, True),
    ]


async def test_attach_unmatched_without_the_providers_id_attaches_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A message the provider has not given an id yet takes no unmatched receipt, not even one
    stored without an id."""
    stray = await _store_change(
        sessions, message_id=None, provider="tencent", provider_message_id=None, status=S.DELIVERED
    )
    message = await _add_message(sessions, status="submitted", provider_message_id=None)
    async with sessions() as session:
        row = await session.get(Message, message.id)
        assert row is not None
        assert await attach_unmatched(session, row) is None
        await session.commit()
    assert await _state(sessions, message.id) == ("submitted", [])
    assert await _changes(sessions, [stray]) == [(None, False)]


# (early receipts as (status, error code) in order of arrival, the message's error code after)
EARLY_CODES: list[tuple[list[tuple[MessageStatus, str | None]], str | None]] = [
    ([(S.FAILED, "30007")], "30007"),
    ([(S.SENT, None), (S.UNDELIVERED, "30003")], "30003"),
    ([(S.SENT, "W1"), (S.DELIVERED, None)], "W1"),
    ([(S.FAILED, "30007"), (S.UNDELIVERED, "30003")], "30007"),
]
EARLY_CODE_IDS = ["failed", "sent-undelivered", "coded-sent-delivered", "failed-undelivered"]


@pytest.mark.parametrize(("receipts", "error_code"), EARLY_CODES, ids=EARLY_CODE_IDS)
async def test_attach_unmatched_keeps_the_error_code_of_the_receipts_it_applies(
    sessions: async_sessionmaker[AsyncSession],
    service: Receipts,
    receipts: list[tuple[MessageStatus, str | None]],
    error_code: str | None,
) -> None:
    """An applied early receipt's error code becomes the message's; one without a code keeps the
    code already there; a receipt that is not applied leaves the code alone."""
    serial = f"2433:{uuid.uuid4().int % 10**12}"
    for status, code in receipts:
        await service.receive(
            provider="tencent",
            message_id=None,
            provider_message_id=serial,
            status=status,
            error_code=code,
            at=None,
            raw={"report_status": status.value},
        )
    message = await _add_message(sessions, status="submitted", provider_message_id=serial)
    async with sessions() as session:
        row = await session.get(Message, message.id)
        assert row is not None
        await attach_unmatched(session, row)
        await session.commit()
    async with sessions() as session:
        stored = await session.get(Message, message.id)
    assert stored is not None and stored.error_code == error_code


# (provider, provider's id asked about, whether an unmatched receipt waits for it), against:
# tencent/S1 unmatched, tencent/S2 matched to a message already, twilio/S3 unmatched.
WAITING = [
    ("tencent", "S1", True),
    ("tencent", "S2", False),
    ("twilio", "S1", False),
    ("tencent", "S3", False),
    ("twilio", "S3", True),
    ("tencent", "S9", False),
]


async def test_has_unmatched_finds_only_an_unmatched_receipt_of_that_provider_and_id(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A send looks for early receipts by provider and provider's id; a receipt already matched to a
    message, or of another provider, does not count."""
    await _store_change(
        sessions, message_id=None, provider="tencent", provider_message_id="S1", status=S.SENT
    )
    await _store_change(
        sessions, message_id="a-message", provider="tencent", provider_message_id="S2", status=S.SENT
    )
    await _store_change(sessions, message_id=None, provider="twilio", provider_message_id="S3", status=S.SENT)
    async with sessions() as session:
        found = [await has_unmatched(session, provider, serial) for provider, serial, _ in WAITING]
    assert found == [waiting for _, _, waiting in WAITING]


@pytest.mark.parametrize(("start", "receipts", "final", "applied"), ORDERINGS, ids=IDS)
async def test_receipts_in_one_request_follow_the_same_order_rules(
    sessions: async_sessionmaker[AsyncSession],
    service: Receipts,
    start: str,
    receipts: list[MessageStatus],
    final: str,
    applied: list[bool],
) -> None:
    """The same receipts in one request (a provider's array, stored in one transaction) leave
    the same status and the same applied flags as one request each."""
    serial = f"2433:{uuid.uuid4().int % 10**12}"
    message = await _add_message(sessions, status=start, provider_message_id=serial)
    batch = [
        Receipt("tencent", message.id, serial, status, None, None, {"report_status": status.value})
        for status in receipts
    ]
    assert await service.receive_many(batch) == applied
    assert await _state(sessions, message.id) == (final, applied)
