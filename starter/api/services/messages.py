"""Message search: the messages of a status, route, journey or template in a time range, newest
first, a page at a time (a keyset cursor: stable while new messages arrive). Numbers are masked."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import and_, or_
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.errors import InvalidInput
from nudge.models import MessageStatus
from nudge.phone import mask
from nudge.store import Message, read_sessions


class BadCursor(InvalidInput):
    """A ``before`` cursor that is not one this search handed out."""


class MessageQuery(BaseModel):
    status: MessageStatus | None = None
    route: str | None = None
    journey: str | None = None
    template: str | None = None
    customer_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: str | None = Field(default=None, description="The `next` cursor of the previous page.")
    limit: int = Field(default=50, ge=1, le=500)


class MessagePublic(BaseModel):
    id: str
    customer_id: str
    workflow_id: str
    journey: str
    step: str
    template: str
    variant: str | None
    category: str
    to: str | None = Field(description="Masked: the country prefix and the last four digits.")
    status: str
    reason: str | None
    error_code: str | None
    route: str | None
    provider: str | None
    signature: str | None
    segments: int
    cost: float | None
    currency: str | None
    clicked: bool
    created_at: datetime
    delivered_at: datetime | None


class MessagePage(BaseModel):
    messages: list[MessagePublic]
    next: str | None = Field(description="Pass as `before` for the next (older) page; null on the last.")


def public(row: Message) -> MessagePublic:
    return MessagePublic.model_validate(
        {**row.model_dump(), "to": mask(row.to) if row.to else None}, from_attributes=False
    )


def _cursor(row: Message) -> str:
    return f"{row.created_at.isoformat()}~{row.id}"


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    at, sep, message_id = cursor.partition("~")
    try:
        if not sep or not message_id:
            raise ValueError(cursor)
        return datetime.fromisoformat(at), message_id
    except ValueError:
        raise BadCursor("`before` is not a cursor this search returned (use the `next` it gave)") from None


class Messages:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._reads = read_sessions(sessions)

    async def search(self, query: MessageQuery) -> MessagePage:
        created = col(Message.created_at)
        where = [
            col(getattr(Message, field)) == getattr(query, field)
            for field in ("status", "route", "journey", "template", "customer_id")
            if getattr(query, field) is not None
        ]
        if query.since is not None:
            where.append(created >= query.since)
        if query.until is not None:
            where.append(created < query.until)
        if query.before is not None:
            at, message_id = _parse_cursor(query.before)
            where.append(or_(created < at, and_(created == at, col(Message.id) < message_id)))
        statement = (
            select(Message)
            .where(*where)
            .order_by(created.desc(), col(Message.id).desc())
            .limit(query.limit + 1)
        )
        async with self._reads() as session:
            rows = list((await session.exec(statement)).all())
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return MessagePage(
            messages=[public(row) for row in rows],
            next=_cursor(rows[-1]) if more and rows else None,
        )
