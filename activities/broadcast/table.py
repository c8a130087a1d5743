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


GROUPED_UPDATES = 4
"""At most this many distinct sets of values: one ``UPDATE ... WHERE id IN`` each, else one
executemany. A batch's rows mostly share theirs (a route, a signature, an Aliyun batch's BizId),
and a statement per set costs far less than one parameter set per row."""


async def update_each(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]], *where: ColumnElement[bool], **every: Any
) -> None:
    """Update many message rows in a few statements.

    Args:
        session: the transaction it runs in.
        rows: each row's ``id`` and its own new values (scalars), by column (the same columns
            for all).
        where: what a row must be to change, besides its id (``PENDING``).
        every: the values every row gets.
    """
    own = [column for column in rows[0] if column != "id"]
    groups = _grouped(rows, own)
    if groups is not None:
        for key, ids in groups.items():
            values = dict(zip(own, key, strict=True))
            await session.exec(update(TABLE).where(TABLE.c.id.in_(ids), *where).values(**values, **every))
        return
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


def _grouped(
    rows: Sequence[Mapping[str, Any]], own: Sequence[str]
) -> dict[tuple[Any, ...], list[str]] | None:
    """The ids by their shared values, or None when there are too many sets of values (or a value
    cannot be compared, a dict or a list): then one executemany."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    try:
        for row in rows:
            groups.setdefault(tuple(row[column] for column in own), []).append(row["id"])
            if len(groups) > GROUPED_UPDATES:
                return None
    except TypeError:
        return None
    return groups


def column_values(table: Table, row: SQLModel) -> dict[str, Any]:
    """A model's values by column, for a plain ``insert`` (its defaults were set when it was made).

    Read from the instance's dict where they are (a row just built has them all), which is a
    tenth of the cost of the instrumented attributes."""
    state = row.__dict__
    return {key: state[key] if key in state else getattr(row, key) for key in (c.key for c in table.columns)}
