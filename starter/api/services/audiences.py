"""Audiences over HTTP: save a query audience, upload a list audience's members, read and delete.

Who is in an audience is ``activities.audiences.Audiences``' to say (the broadcast activities ask it
too); this module keeps the saved rows. A list is uploaded in chunks of ids (the CLI sends 5,000 at
a time): the first chunk replaces the members, the next ones add to them, and adding an id twice
changes nothing, so a chunk sent again after a lost answer is harmless. Only ids that are
customers (and not erased) are stored; the others are counted and the first few named, so a
CSV of the wrong column is seen at once. A broadcast started while a list is uploading sees the
members uploaded so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Executable, delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel import select as select_rows
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.audiences import audience_named
from nudge.audiences import AudienceIn, AudienceKind
from nudge.errors import InvalidInput
from nudge.logging import get_logger
from nudge.store import Audience, AudienceMember, Customer, read_sessions, utcnow

log = get_logger(__name__)
UNKNOWN_SHOWN = 20
"""How many of a chunk's unknown ids the answer names (all are counted)."""
_LOOKUP = 500
"""Ids per ``IN (...)`` when checking which are customers (well under SQLite's bound)."""


class NotAList(InvalidInput):
    """Members were uploaded to a query audience (its members are whoever its query selects)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"audience {name!r} is a query audience: save it as a list to upload ids")
        self.name = name


@dataclass
class Upload:
    """What one chunk did: ``stored`` ids newly in the list, the list's ``members`` after it, and
    the ids that are no customer (``unknown``, the first few in ``unknown_ids``)."""

    received: int
    stored: int
    members: int
    unknown: int
    duplicates: int
    unknown_ids: list[str] = field(default_factory=list)


async def save(sessions: async_sessionmaker[AsyncSession], audience: AudienceIn, *, by: str) -> Audience:
    """Create or replace an audience (a query's definition, or an empty list to upload into); a list
    saved as a query loses its members, a query saved as a list starts empty."""
    definition = audience.model_dump(mode="json")["where"] if audience.where is not None else None
    async with sessions() as session:
        row = await session.get(Audience, audience.name)
        if row is None:
            row = Audience(name=audience.name, kind=audience.kind, created_by=by, updated_by=by)
        elif row.kind != audience.kind:
            await _execute(
                session, delete(AudienceMember).where(col(AudienceMember.audience) == audience.name)
            )
        row.kind, row.definition, row.description = audience.kind, definition, audience.description
        row.updated_by, row.updated_at = by, utcnow()
        session.add(row)
        await session.commit()
        await session.refresh(row)
    log.info("audience_saved", audience=audience.name, kind=audience.kind, by=by)
    return row


async def upload(
    sessions: async_sessionmaker[AsyncSession], name: str, ids: Sequence[str], *, replace: bool
) -> Upload:
    """Add a chunk of customer ids to a list audience (replacing its members when ``replace``).

    Raises:
        UnknownAudience: no audience has this name.
        NotAList: it is a query audience.
    """
    wanted = list(dict.fromkeys(ids))
    async with sessions() as session:
        audience = await audience_named(session, name)
        if audience.kind != AudienceKind.LIST:
            raise NotAList(name)
        known: set[str] = set()
        for start in range(0, len(wanted), _LOOKUP):
            chunk = wanted[start : start + _LOOKUP]
            found = select_rows(col(Customer.id)).where(
                col(Customer.id).in_(chunk), col(Customer.erased_at).is_(None)
            )
            known.update((await session.exec(found)).all())
        if replace:
            await _execute(session, delete(AudienceMember).where(col(AudienceMember.audience) == name))
        before = await _members(session, name)
        rows = [
            {"audience": name, "customer_id": customer_id} for customer_id in wanted if customer_id in known
        ]
        if rows:
            dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
            insert = postgres_insert if dialect == "postgresql" else sqlite_insert
            for start in range(0, len(rows), _LOOKUP):
                await _execute(
                    session,
                    insert(AudienceMember).values(rows[start : start + _LOOKUP]).on_conflict_do_nothing(),
                )
        after = await _members(session, name)
        audience.updated_at = utcnow()
        session.add(audience)
        await session.commit()
    unknown = [customer_id for customer_id in wanted if customer_id not in known]
    return Upload(
        received=len(ids),
        stored=after - before,
        members=after,
        unknown=len(unknown),
        duplicates=len(ids) - len(wanted),
        unknown_ids=unknown[:UNKNOWN_SHOWN],
    )


async def _execute(session: AsyncSession, statement: Executable) -> None:
    """A Core statement in the session's transaction."""
    await (await session.connection()).execute(statement)


async def _members(session: AsyncSession, name: str) -> int:
    counted = select(func.count()).select_from(AudienceMember).where(col(AudienceMember.audience) == name)
    return int((await (await session.connection()).execute(counted)).scalar_one())


async def list_audiences(sessions: async_sessionmaker[AsyncSession]) -> Sequence[Audience]:
    """Every audience, by name."""
    async with read_sessions(sessions)() as session:
        return (await session.exec(select_rows(Audience).order_by(col(Audience.name)))).all()


async def read(sessions: async_sessionmaker[AsyncSession], name: str) -> Audience:
    """One audience.

    Raises:
        UnknownAudience: no audience has this name.
    """
    async with read_sessions(sessions)() as session:
        return await audience_named(session, name)


async def remove(sessions: async_sessionmaker[AsyncSession], name: str, *, by: str) -> Audience:
    """Delete an audience and its members; answers what was deleted.

    Raises:
        UnknownAudience: no audience has this name.
    """
    async with sessions() as session:
        audience = await audience_named(session, name)
        await _execute(session, delete(AudienceMember).where(col(AudienceMember.audience) == name))
        await session.delete(audience)
        await session.commit()
    log.info("audience_deleted", audience=name, by=by)
    return audience
