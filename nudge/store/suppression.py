"""The suppression list: numbers that must not be messaged, keyed by their hash."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.phone import phone_hash
from nudge.store.columns import timestamp

SUPPRESS_ALL = "all"
"""``Suppression.scope`` of a number that gets nothing at all (invalid, carrier-blocked)."""


class Suppression(SQLModel, table=True):
    """A number that must not get marketing messages, and why (a STOP reply, a provider's opt-out).

    Keyed by ``nudge.phone.phone_hash``: it survives the customer's deletion without the number.
    A ``scope`` of ``all`` is a number that is invalid or blocked by its carrier: it gets no
    message of any kind, and a START reply does not lift it.
    """

    __tablename__ = "suppressed_number"
    phone_hash: str = Field(primary_key=True, max_length=64)
    reason: str
    source: str
    scope: str | None = None
    """``None``: marketing only (an opt-out). ``all``: every message (see ``SUPPRESS_ALL``)."""
    created_at: datetime = timestamp(nullable=False)


async def suppress(
    session: AsyncSession, number: str, *, reason: str, source: str, scope: str | None = None
) -> bool:
    """Add ``number`` to the suppression list (not committed); True if that changed anything.

    An opt-out never narrows an ``all`` suppression, and an invalid number widens an opt-out.
    """
    row = await session.get(Suppression, phone_hash(number))
    if row is None:
        session.add(Suppression(phone_hash=phone_hash(number), reason=reason, source=source, scope=scope))
        return True
    if scope == SUPPRESS_ALL and row.scope != SUPPRESS_ALL:
        row.scope, row.reason, row.source = scope, reason, source
        session.add(row)
        return True
    return False
