"""The message table as a broadcast batch writes it: the rows' store, the gate's ``Decision``, and
the one-statement update of many rows that every write of a batch is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Table, bindparam, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.models import MessageStatus
from nudge.sinks import StreamSink
from nudge.store import Link, Message, MessageStatusChange, read_sessions

TABLE: Table = Message.__table__  # type: ignore[attr-defined]
LINKS: Table = Link.__table__  # type: ignore[attr-defined]
CHANGES: Table = MessageStatusChange.__table__  # type: ignore[attr-defined]
PENDING = TABLE.c.status == MessageStatus.PENDING.value
"""Only a row still pending changes: one a concurrent attempt decided keeps its decision."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the gate made of one pending row: blocked (``until`` None) or deferred until then."""

    message: Message
    reason: str
    until: datetime | None = None


class Settled(NamedTuple):
    """What the report reads of a recipient's row (three columns, not the whole row)."""

    status: str
    reason: str | None
    defer_until: datetime | None


class RowStore:
    """The store a batch's rows are read from and written to, and the stream its events go to."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, sinks: Sequence[StreamSink] = ()
    ) -> None:
        self._sessions = sessions
        self._reads = read_sessions(sessions)
        self._sinks = sinks
        self._postgres = sessions.kw["bind"].dialect.name == "postgresql"


async def update_each(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]], *where: ColumnElement[bool], **every: Any
) -> None:
    """Update many message rows in one statement (an executemany: one prepared statement).

    Args:
        session: the transaction it runs in.
        rows: each row's ``id`` and its own new values, by column (the same columns for all).
        where: what a row must be to change, besides its id (``PENDING``).
        every: the values every row gets.
    """
    own = [column for column in rows[0] if column != "id"]
    # The parameters are named apart from the columns: SQLAlchemy keeps a column's own name
    # for the SET clause's automatic parameters.
    statement = (
        update(TABLE)
        .where(TABLE.c.id == bindparam("_id"), *where)
        .values(**{column: bindparam(f"_{column}") for column in own}, **every)
    )
    await session.exec(
        statement, params=[{f"_{column}": value for column, value in row.items()} for row in rows]
    )


def column_values(table: Table, row: SQLModel) -> dict[str, Any]:
    """A model's values by column, for a plain ``insert`` (its defaults were set when it was made)."""
    return {column.key: getattr(row, column.key) for column in table.columns}
