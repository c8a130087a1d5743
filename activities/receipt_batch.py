"""The set-based statements ``Receipts`` stores a batch of receipts with, in one transaction: one
read of the batch's messages, one executemany of the forward moves, one INSERT of every receipt.

Kept apart from the status machine's callers (``activities/receipts.py``) so that each reads in
one sitting; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import Row, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.models import MessageStatus
from nudge.store import Message, MessageStatusChange

MATCHED = (
    col(Message.id),
    col(Message.provider),
    col(Message.provider_message_id),
    col(Message.to),
    col(Message.status),
    col(Message.error_code),
    col(Message.delivered_at),
    col(Message.notify_receipt),
    col(Message.workflow_id),
    col(Message.broadcast_id),
)
"""What a receipt needs of its message: not the text, the parameters or the rest."""
Matched: TypeAlias = "Row[*tuple[Any, ...]]"
"""A message as ``MATCHED`` reads it (its columns by name)."""
_MESSAGES = Message.__table__  # type: ignore[attr-defined]
MOVE = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("move_id"))
    .values(
        status=bindparam("move_status"),
        error_code=bindparam("move_error_code"),
        updated_at=bindparam("move_at"),
        delivered_at=bindparam("move_delivered_at"),
    )
)
"""The forward moves of a batch, one parameter set per message (an executemany: the driver runs
the one prepared statement for all of them)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """One receipt as a provider reported it."""

    provider: str
    message_id: str | None
    """Our id, when the provider echoes it (Aliyun's OutId, the simulator's client_ref)."""
    provider_message_id: str | None
    status: MessageStatus
    error_code: str | None
    at: datetime | None
    raw: dict[str, Any]
    to: str | None = None
    """The number, when the provider names it (an Aliyun batch shares one BizId)."""


async def match_receipts(session: AsyncSession, receipts: Sequence[Receipt]) -> list[Matched | None]:
    """Each receipt's message, only ever among that provider's messages: by our id (when the
    provider and the number agree), else by the provider's id and the number. One read for the
    batch, inside its transaction (SQLite's write lock is held: nothing changes under it); on
    PostgreSQL it locks the rows, in id order, so that two batches never wait on each other."""
    ids = {r.message_id for r in receipts if r.message_id}
    provider_ids = {r.provider_message_id for r in receipts if r.provider_message_id}
    connection = await session.connection()
    rows = await connection.execute(
        select(*MATCHED)
        .where(or_(col(Message.id).in_(ids), col(Message.provider_message_id).in_(provider_ids)))
        .order_by(col(Message.id))
        .with_for_update()
    )
    by_id: dict[str, Matched] = {}
    by_provider_id: dict[tuple[str | None, str], list[Matched]] = {}
    for row in rows.all():
        by_id[row.id] = row
        if row.provider_message_id:
            by_provider_id.setdefault((row.provider, row.provider_message_id), []).append(row)
    found: list[Matched | None] = []
    for receipt in receipts:
        mine = by_id.get(receipt.message_id) if receipt.message_id else None
        if mine is not None and mine.provider in (receipt.provider, None) and receipt.to in (None, mine.to):
            found.append(mine)
            continue
        candidates = by_provider_id.get((receipt.provider, receipt.provider_message_id or ""), [])
        found.append(next((c for c in candidates if receipt.to in (None, c.to)), None))
    return found


def forward_moves(receipts: Sequence[Receipt], matched: Sequence[Matched | None]) -> list[bool]:
    """Which receipts apply, in arrival order: one that ranks above its message's status so far
    (``MessageStatus.rank``), so that nothing moves back and of two final statuses the first stays."""
    status: dict[str, MessageStatus] = {}
    applied = []
    for receipt, message in zip(receipts, matched, strict=True):
        if message is None:
            applied.append(False)
            continue
        current = status.get(message.id) or MessageStatus(message.status)
        applied.append(receipt.status.rank > current.rank)
        status[message.id] = receipt.status if applied[-1] else current
    return applied


async def write_receipts(
    connection: AsyncConnection,
    receipts: Sequence[Receipt],
    matched: Sequence[Matched | None],
    applied: Sequence[bool],
    *,
    now: datetime,
) -> None:
    """Move each message to the last status applied to it (keeping the last error code given),
    and insert every receipt, applied or not, matched or not."""
    moves: dict[str, dict[str, Any]] = {}
    for receipt, message, moved in zip(receipts, matched, applied, strict=True):
        if message is not None and moved:
            before = moves.get(message.id, {})
            delivered = receipt.status is MessageStatus.DELIVERED
            moves[message.id] = {
                "move_id": message.id,
                "move_status": receipt.status.value,
                "move_error_code": receipt.error_code or before.get("move_error_code", message.error_code),
                "move_at": now,
                "move_delivered_at": now if delivered else message.delivered_at,
            }
    if moves:
        await connection.execute(MOVE, list(moves.values()))
    await connection.execute(
        insert(MessageStatusChange),
        [
            {
                "message_id": message.id if message is not None else None,
                "provider": receipt.provider,
                "provider_message_id": receipt.provider_message_id,
                "status": receipt.status.value,
                "error_code": receipt.error_code,
                "applied": moved,
                "at": receipt.at or now,
                # A message without a number is an erased customer's: keep nothing of theirs.
                "raw": receipt.raw if message is None or message.to else {},
            }
            for receipt, message, moved in zip(receipts, matched, applied, strict=True)
        ],
    )
