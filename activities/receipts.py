"""Receipts that arrive before their send is recorded ("early" receipts).

A provider may report a message before Nudge has stored the provider's id for it (Tencent's
SerialNo, Twilio's SID): the receipt is then stored unmatched. Both sides look again after they
commit, so whichever commits second attaches it, on SQLite and under PostgreSQL's READ COMMITTED.
"""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.models import MessageStatus
from nudge.store import Message, MessageStatusChange, utcnow


async def has_unmatched(session: AsyncSession, provider: str, provider_message_id: str) -> bool:
    rows = await session.exec(
        select(MessageStatusChange.id).where(
            col(MessageStatusChange.message_id).is_(None),
            MessageStatusChange.provider == provider,
            MessageStatusChange.provider_message_id == provider_message_id,
        )
    )
    return rows.first() is not None


async def attach_unmatched(session: AsyncSession, message: Message) -> MessageStatus | None:
    """Attach the unmatched receipts for ``message`` (in this transaction, not committed).

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
        session.add(message)
    return moved
