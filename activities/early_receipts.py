"""Receipts that arrive before their send is recorded ("early" receipts): kept unmatched, then
attached by whichever side commits second, the receipt's (``activities/receipts.py``) or the
send's (the journey's ledger, a broadcast batch's acceptances), and the final statuses they move
a message to published to the stream."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.models import MessageStatus
from nudge.sinks import EventKind, StreamSink
from nudge.store import Message, MessageStatusChange, publish, utcnow

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
