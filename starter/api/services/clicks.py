"""Short-link clicks: every request recorded (its time, user agent and a hash of its address), a
person's first click marks the message clicked and is signalled to its journey (never to a
broadcast's workflow); a bot's (``nudge.clicks``) is recorded and redirected, and nothing more.

The clicks of requests that arrive together are stored in one transaction (``GroupCommit``): one
read of their links and messages, one conditional UPDATE of the first clicks, one INSERT.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Result, insert, update
from sqlalchemy import select as select_columns
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from activities.feedback import GroupCommit, finish_anyway, signal_journey, signalled
from nudge.clicks import BotReason, bot_reason, ip_hash
from nudge.logging import get_logger
from nudge.metrics import CLICKS
from nudge.models import MessageUpdate
from nudge.sinks import EventKind, StreamSink
from nudge.store import Click, Link, Message, publish, utcnow

log = get_logger(__name__)
_MESSAGES = Message.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Request:
    """What a short-link request tells about its client."""

    head: bool = False
    user_agent: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class _Arrival:
    code: str
    request: Request
    at: datetime


@dataclass(frozen=True, slots=True)
class _Followed:
    """What became of one request, once committed."""

    target: str | None
    """The link's target; None for an unknown code (or an erased customer's link)."""
    message_id: str = ""
    bot: BotReason | None = None
    first: bool = False
    workflow_id: str | None = None
    """The journey to signal: a person's first click on a journey's message."""


class Clicks:
    def __init__(
        self,
        *,
        client: Client,
        sessions: async_sessionmaker[AsyncSession],
        ip_key: bytes = b"",
        sinks: Sequence[StreamSink] = (),
        batch_limit: int = 500,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._ip_key = ip_key
        self._sinks = sinks
        """The stream's sinks: a person's first click on a message is published."""
        self._batches = GroupCommit(self._store, limit=batch_limit)

    async def follow(self, code: str, request: Request) -> str | None:
        """Record the request and return the link's target, or None for an unknown code. A
        request cancelled meanwhile still ends: its click is stored and its journey signalled."""
        return await finish_anyway(self._follow(code, request))

    async def _follow(self, code: str, request: Request) -> str | None:
        [followed] = await self._batches.submit([_Arrival(code, request, utcnow())])
        if followed.target is None:
            return None
        CLICKS.labels("false" if followed.bot else "true", followed.bot or "").inc()
        if followed.workflow_id:
            update = MessageUpdate(message_id=followed.message_id, kind="click", url=followed.target)
            await signal_journey(self._client, followed.workflow_id, update)
        return followed.target

    async def _store(self, arrivals: list[_Arrival]) -> list[_Followed]:
        """One transaction for a batch of requests; of concurrent first clicks on one message
        exactly one is the first (the UPDATE is conditional, and the batch takes its earliest)."""
        async with self._sessions() as session:
            connection = await session.connection()  # Core statements: no ORM objects
            rows: Result[Any] = await connection.execute(
                select_columns(
                    col(Link.code),
                    col(Link.message_id),
                    col(Link.target_url),
                    col(Message.id).label("found"),
                    col(Message.delivered_at),
                    col(Message.created_at),
                    col(Message.clicked),
                    col(Message.workflow_id),
                    col(Message.broadcast_id),
                )
                .outerjoin(Message, col(Message.id) == col(Link.message_id))
                .where(col(Link.code).in_({arrival.code for arrival in arrivals}))
            )
            links = {row.code: row for row in rows.all()}
            bots: list[BotReason | None] = []
            unclicked = set()
            for arrival in arrivals:
                link = links.get(arrival.code)
                since = arrival.at - (link.delivered_at or link.created_at) if link and link.found else None
                request = arrival.request
                bots.append(
                    bot_reason(head=request.head, user_agent=request.user_agent, since_delivery=since)
                )
                # An erased customer's link has no target: a 404, and nothing about it counts.
                counts = link is not None and link.found and bool(link.target_url) and bots[-1] is None
                if counts and link is not None and not link.clicked:
                    unclicked.add(link.message_id)
            moved: set[str] = set()
            if unclicked:
                result = await connection.execute(
                    update(_MESSAGES)
                    .where(_MESSAGES.c.id.in_(unclicked), ~_MESSAGES.c.clicked)
                    .values(clicked=True)
                    .returning(_MESSAGES.c.id)
                )
                moved = set(result.scalars())
            followed: list[_Followed] = []
            recorded = []
            for arrival, bot in zip(arrivals, bots, strict=True):
                link = links.get(arrival.code)
                if link is None or not link.target_url:  # unknown, or its customer was erased
                    followed.append(_Followed(None))
                    continue
                first = bot is None and link.message_id in moved
                if first:
                    moved.discard(link.message_id)  # the batch's earliest person's click is the first
                journey = (
                    link.workflow_id if first and signalled(link.workflow_id, link.broadcast_id) else None
                )
                followed.append(_Followed(link.target_url, link.message_id, bot, first, journey))
                recorded.append(
                    {
                        "code": arrival.code,
                        "message_id": link.message_id,
                        "user_agent": (arrival.request.user_agent or "")[:500] or None,
                        "bot": bot,
                        "ip_hash": ip_hash(self._ip_key, arrival.request.address),
                        "at": arrival.at,
                    }
                )
            if recorded:
                await connection.execute(insert(Click), recorded)
            await self._publish(session, arrivals, followed)
            await session.commit()
        _log_stored(arrivals, followed)
        return followed

    async def _publish(
        self, session: AsyncSession, arrivals: Sequence[_Arrival], followed: Sequence[_Followed]
    ) -> None:
        """Publish each first click (the stream wants whole messages: read only when a sink does)."""
        firsts = [(arrival, f) for arrival, f in zip(arrivals, followed, strict=True) if f.first]
        if not firsts or not any(sink.wants(EventKind.CLICKED) for sink in self._sinks):
            return
        rows = await session.exec(
            select(Message).where(col(Message.id).in_({f.message_id for _, f in firsts}))
        )
        messages = {message.id: message for message in rows.all()}
        for arrival, first in firsts:
            publish(
                session, self._sinks, EventKind.CLICKED, message=messages[first.message_id], at=arrival.at
            )


def _log_stored(arrivals: Sequence[_Arrival], followed: Sequence[_Followed]) -> None:
    """One line per transaction (a line per click cost as much as storing it); each at debug."""
    if logging.getLogger(__name__).isEnabledFor(logging.DEBUG):
        for arrival, outcome in zip(arrivals, followed, strict=True):
            log.debug(
                "link_clicked",
                code=arrival.code,
                message_id=outcome.message_id,
                first=outcome.first,
                bot=outcome.bot,
            )
    log.info(
        "clicks_stored",
        requests=len(arrivals),
        unknown=sum(outcome.target is None for outcome in followed),
        bots=sum(outcome.bot is not None for outcome in followed if outcome.target),
        first=sum(outcome.first for outcome in followed),
    )
