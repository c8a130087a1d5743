"""Audiences: who is in one, read in id order, a page at a time, with indexes.

``Audiences`` is what the broadcast activities and the API share: ``count`` (before anything is
sent), ``bounds`` and ``members`` (the keyset pages a broadcast walks: the id that ends each batch,
then the members of the half-open range ``(after, upto]``), and ``sample``. Every read excludes
erased customers. A query audience is compiled to SQL on each read (``nudge.audiences`` validated
it when it was saved), so it follows the profiles as they change; a list audience reads its rows in
``audience_member`` joined to ``customer``.

Pages are keyset ranges on the customer id, never ``OFFSET`` from the start: ``bounds`` reads at
most ``batches * batch_size + 1`` ids after ``after`` and picks every ``batch_size``-th with
``row_number()``, so each call costs the same at the start of a million members as at the end. A
customer added while a broadcast runs falls in exactly one range, so no one is read twice; whether
they are in depends on whether their range was read yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel import select as select_rows
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.audience_sql import compile_where
from nudge.audiences import NODE, AudienceKind
from nudge.errors import NotFound
from nudge.store import Audience, AudienceMember, Customer, read_sessions, utcnow


class UnknownAudience(NotFound):
    """No audience has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown audience {name!r}", kind="audience", name=name)


async def audience_named(session: AsyncSession, name: str) -> Audience:
    """The saved audience ``name``.

    Raises:
        UnknownAudience: no audience has this name.
    """
    audience = await session.get(Audience, name)
    if audience is None:
        raise UnknownAudience(name)
    return audience


@dataclass(frozen=True)
class _Source:
    """An audience as SQL: the id column its keyset runs on, and the select of its members."""

    key: Any
    members: Select[Any]


class Audiences:
    """The members of saved audiences (read-only sessions: on SQLite they take no lock).

    Args:
        sessions: the store's sessions.
        clock: what ``last_active within 30d`` counts back from (tests fix it).
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._sessions = read_sessions(sessions)
        self._dialect: str = sessions.kw["bind"].dialect.name
        self._clock = clock

    async def _source(self, session: AsyncSession, name: str) -> _Source:
        audience = await audience_named(session, name)
        alive = col(Customer.erased_at).is_(None)
        if audience.kind == AudienceKind.LIST:
            key = col(AudienceMember.customer_id)
            members: Select[Any] = (
                select(key.label("id"))
                .select_from(AudienceMember)
                .join(Customer, col(Customer.id) == key)
                .where(col(AudienceMember.audience) == name, alive)
            )
            return _Source(key=key, members=members)
        where = compile_where(
            NODE.validate_python(audience.definition), dialect=self._dialect, now=self._clock()
        )
        key = col(Customer.id)
        return _Source(key=key, members=select(key.label("id")).where(alive, where))

    async def count(self, name: str) -> int:
        """How many customers the audience holds now.

        Raises:
            UnknownAudience: no audience has this name.
        """
        async with self._sessions() as session:
            source = await self._source(session, name)
            counted = select(func.count()).select_from(source.members.subquery())
            connection = await session.connection()
            return int((await connection.execute(counted)).scalar_one())

    async def bounds(
        self, name: str, *, after: str | None, batches: int, batch_size: int
    ) -> tuple[list[str], bool]:
        """The customer id that ends each of the next ``batches`` batches of ``batch_size``
        members after ``after``, ascending (keyset on customer.id, never OFFSET), and True when no
        member follows the last bound.

        The last bound may end a shorter batch (the audience's end). No bound and True: nothing
        is left after ``after``.

        Raises:
            UnknownAudience: no audience has this name.
        """
        if batches < 1 or batch_size < 1:
            raise ValueError("batches and batch_size are at least 1")
        window = batches * batch_size
        async with self._sessions() as session:
            source = await self._source(session, name)
            ids = source.members
            if after is not None:
                ids = ids.where(source.key > after)
            # One more than the window: whether a member follows the last bound.
            ahead = ids.order_by(source.key).limit(window + 1).subquery()
            numbered = select(
                ahead.c.id,
                func.row_number().over(order_by=ahead.c.id).label("position"),
                func.count().over().label("total"),
            ).subquery()
            picked = (
                select(numbered.c.id, numbered.c.total)
                .where(
                    and_(numbered.c.position <= window),
                    (numbered.c.position % batch_size == 0) | (numbered.c.position == numbered.c.total),
                )
                .order_by(numbered.c.position)
            )
            rows = (await (await session.connection()).execute(picked)).all()
        if not rows:
            return [], True
        return [row.id for row in rows], rows[0].total <= window

    async def members(self, name: str, *, after: str | None, upto: str) -> list[str]:
        """The members with after < id <= upto, ascending.

        Raises:
            UnknownAudience: no audience has this name.
        """
        async with self._sessions() as session:
            source = await self._source(session, name)
            ids = source.members.where(source.key <= upto)
            if after is not None:
                ids = ids.where(source.key > after)
            connection = await session.connection()
            return list((await connection.execute(ids.order_by(source.key))).scalars())

    async def sample(self, name: str, *, size: int) -> list[Customer]:
        """Up to ``size`` members' profiles: the first in id order (cheap at any size; a look at
        who matches, not a random draw).

        Raises:
            UnknownAudience: no audience has this name.
        """
        async with self._sessions() as session:
            source = await self._source(session, name)
            ids = source.members.order_by(source.key).limit(size).subquery()
            rows = (
                select_rows(Customer).where(col(Customer.id).in_(select(ids.c.id))).order_by(col(Customer.id))
            )
            return list((await session.exec(rows)).all())


def where_clause(definition: dict[str, Any], *, dialect: str, now: datetime) -> ColumnElement[bool]:
    """A saved definition's WHERE clause over ``customer`` (for a caller composing its own select)."""
    return compile_where(NODE.validate_python(definition), dialect=dialect, now=now)
