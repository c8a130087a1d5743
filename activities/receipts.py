"""Delivery receipts: the status machine (a message only moves forward), and receipts that arrive
before their send is recorded ("early" receipts).

``Receipts`` stores every receipt, applies one when it moves the message forward, then signals the
journey that waits for it; the gateway's webhooks and the worker's receipt sweep both use it.

A provider may report a message before Nudge has stored the provider's id for it (Tencent's
SerialNo, Twilio's SID): the receipt is then stored unmatched. Both sides look again after they
commit, so whichever commits second attaches it, on SQLite and under PostgreSQL's READ COMMITTED.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from activities.compliance.complaints import ComplaintKind, ComplaintRecorder
from activities.feedback import count_complaint, signal_journey
from nudge.logging import get_logger
from nudge.metrics import RECEIPTS
from nudge.models import MessageStatus, MessageUpdate
from nudge.sinks import EventKind, StreamSink
from nudge.store import Message, MessageStatusChange, publish, read_sessions, utcnow

log = get_logger(__name__)
RECEIPT_KINDS = {
    MessageStatus.DELIVERED: EventKind.DELIVERED,
    MessageStatus.UNDELIVERED: EventKind.UNDELIVERED,
    MessageStatus.FAILED: EventKind.FAILED,
}
"""The receipts the stream publishes: final ones (a carrier's ``sent`` adds nothing to the send's)."""


def publish_receipt(
    session: AsyncSession,
    sinks: Sequence[StreamSink],
    message: Message,
    status: MessageStatus,
    *,
    error_code: str | None,
    at: datetime | None = None,
) -> None:
    """Publish a receipt that moved ``message`` to ``status`` (in the transaction that moved it)."""
    if (kind := RECEIPT_KINDS.get(status)) is not None:
        error = error_code or message.error_code
        publish(session, sinks, kind, message=message, at=at, status=status.value, error_code=error)


async def has_unmatched(session: AsyncSession, provider: str, provider_message_id: str) -> bool:
    rows = await session.exec(
        select(MessageStatusChange.id).where(
            col(MessageStatusChange.message_id).is_(None),
            MessageStatusChange.provider == provider,
            MessageStatusChange.provider_message_id == provider_message_id,
        )
    )
    return rows.first() is not None


async def attach_unmatched(
    session: AsyncSession, message: Message, *, sinks: Sequence[StreamSink] = ()
) -> MessageStatus | None:
    """Attach the unmatched receipts for ``message`` (in this transaction, not committed), and
    publish the final status they moved it to.

    Returns the new status when one of them moved the message forward, else None.
    """
    if not message.provider or not message.provider_message_id:
        return None
    rows = await session.exec(
        select(MessageStatusChange)
        .where(
            col(MessageStatusChange.message_id).is_(None),
            MessageStatusChange.provider == message.provider,
            MessageStatusChange.provider_message_id == message.provider_message_id,
        )
        # In arrival order: of two final statuses the first one stays, and a table's row order
        # is not arrival order (PostgreSQL reuses space that VACUUM frees).
        .order_by(col(MessageStatusChange.id))
    )
    status = MessageStatus(message.status)
    moved: MessageStatus | None = None
    for change in rows.all():
        change.message_id = message.id
        received = MessageStatus(change.status)
        if received.rank > status.rank:
            status = moved = received
            change.applied = True
            message.error_code = change.error_code or message.error_code
        session.add(change)
    if moved is not None:
        message.status = moved
        message.updated_at = utcnow()
        if moved is MessageStatus.DELIVERED:
            message.delivered_at = message.updated_at
        session.add(message)
        publish_receipt(session, sinks, message, moved, error_code=message.error_code)
    return moved


class Receipts:
    def __init__(
        self,
        *,
        client: Client,
        sessions: async_sessionmaker[AsyncSession],
        complaints: ComplaintRecorder | None = None,
        sinks: Sequence[StreamSink] = (),
    ) -> None:
        self._complaints = complaints
        self._sinks = sinks
        """The stream's sinks: a receipt that moves a message to a final status is published."""
        """Counts complaint receipt codes against the complaint-rate breaker."""
        self._client = client
        self._sessions = sessions
        self._reads = read_sessions(sessions)

    async def receive(
        self,
        *,
        provider: str,
        message_id: str | None,
        provider_message_id: str | None,
        status: MessageStatus,
        error_code: str | None,
        at: datetime | None,
        raw: dict[str, Any],
        to: str | None = None,
    ) -> bool:
        """Store the receipt; apply it if it moves the message forward. Returns True if applied.

        Every receipt is kept, even a duplicate, or one for a message whose send is not recorded
        yet (``send_message`` applies it when it records the provider's answer). A message is
        found by our id, or by the provider's id and the number (an Aliyun batch shares one id).
        """
        # Find the message without a lock, then write only: on SQLite a transaction holds the
        # one write lock from its first statement, and receipts arrive as fast as sends go out.
        async with self._reads() as session:
            message = await self._match(session, provider, message_id, provider_message_id, to)
        applied = False
        async with self._sessions() as session:
            if message is not None:
                behind = [s.value for s in MessageStatus if s.rank < status.rank]
                now = utcnow()
                moved = await session.exec(
                    update(Message)
                    .where(col(Message.id) == message.id, col(Message.status).in_(behind))
                    .values(
                        status=status.value,
                        error_code=func.coalesce(error_code, col(Message.error_code)),
                        updated_at=now,
                        delivered_at=now if status is MessageStatus.DELIVERED else col(Message.delivered_at),
                    )
                )
                applied = moved.rowcount == 1
                if applied:
                    publish_receipt(session, self._sinks, message, status, error_code=error_code, at=at)
            session.add(
                MessageStatusChange(
                    message_id=message.id if message else None,
                    provider=provider,
                    provider_message_id=provider_message_id,
                    status=status,
                    error_code=error_code,
                    applied=applied,
                    at=at or utcnow(),
                    # A message without a number is an erased customer's: keep nothing of theirs.
                    raw=raw if message is None or message.to else {},
                )
            )
            await session.commit()
        notify = message is not None and applied and message.notify_receipt
        workflow_id = message.workflow_id if message else None
        RECEIPTS.labels(provider, status.value, "true" if applied else "false").inc()
        if message is None and provider_message_id:
            # The send may have been recorded while we stored this (it could not see our row).
            message, applied = await self._attach_late(provider, provider_message_id)
            notify = message is not None and applied and message.notify_receipt
            workflow_id = message.workflow_id if message else None
        log.info(
            "receipt_stored",
            provider=provider,
            message_id=message.id if message else message_id,
            provider_message_id=provider_message_id,
            status=status.value,
            applied=applied,
            matched=message is not None,
        )
        if (
            message is not None
            and self._complaints is not None
            and self._complaints.counts(provider, error_code)
        ):
            await count_complaint(self._complaints.record(message, ComplaintKind.PROVIDER_CODE, error_code))
        if notify and workflow_id and message is not None:
            await signal_journey(
                self._client,
                workflow_id,
                MessageUpdate(message_id=message.id, kind="receipt", status=status, error_code=error_code),
            )
        return applied

    async def _attach_late(self, provider: str, provider_message_id: str) -> tuple[Message | None, bool]:
        async with self._reads() as session:
            rows = await session.exec(
                select(Message.id).where(
                    Message.provider_message_id == provider_message_id, Message.provider == provider
                )
            )
            found = rows.first()
        if found is None:
            return None, False
        async with self._sessions() as session:
            message = await session.get(Message, found)
            if message is None:
                return None, False
            moved = await attach_unmatched(session, message, sinks=self._sinks)
            await session.commit()
        return message, moved is not None

    @staticmethod
    async def _match(
        session: AsyncSession,
        provider: str,
        message_id: str | None,
        provider_message_id: str | None,
        to: str | None,
    ) -> Message | None:
        """Our message for a receipt, only ever among that provider's messages."""
        if message_id:
            message = await session.get(Message, message_id)
            if (
                message is not None
                and message.provider in (provider, None)
                and (to is None or message.to == to)
            ):
                return message
        if provider_message_id:
            query = select(Message).where(
                Message.provider_message_id == provider_message_id, Message.provider == provider
            )
            if to is not None:
                query = query.where(Message.to == to)
            return (await session.exec(query)).first()
        return None
