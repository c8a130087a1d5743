"""Short-link clicks: every request recorded (its time, user agent and a hash of its address), a
person's first click marks the message clicked and is signalled to its journey; a bot's
(``nudge.clicks``) is recorded and redirected, and nothing more."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, update
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from activities.feedback import signal_journey
from nudge.clicks import bot_reason, ip_hash
from nudge.logging import get_logger
from nudge.metrics import CLICKS
from nudge.models import MessageUpdate
from nudge.sinks import EventKind, StreamSink
from nudge.store import Click, Link, Message, publish, utcnow

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Request:
    """What a short-link request tells about its client."""

    head: bool = False
    user_agent: str | None = None
    address: str | None = None


class Clicks:
    def __init__(
        self,
        *,
        client: Client,
        sessions: async_sessionmaker[AsyncSession],
        ip_key: bytes = b"",
        sinks: Sequence[StreamSink] = (),
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._ip_key = ip_key
        self._sinks = sinks
        """The stream's sinks: a person's first click on a message is published."""

    async def follow(self, code: str, request: Request) -> str | None:
        """Record the request and return the link's target, or None for an unknown code."""
        async with self._sessions() as session:
            link = await session.get(Link, code)
            if link is None or not link.target_url:  # unknown, or its customer was erased
                return None
            message = await session.get(Message, link.message_id)
            now = utcnow()
            since = None
            if message is not None:
                since = now - (message.delivered_at or message.created_at)
            bot = bot_reason(head=request.head, user_agent=request.user_agent, since_delivery=since)
            first = False
            if bot is None and message is not None and not message.clicked:
                # Conditional, so that of concurrent first clicks exactly one is the first (the
                # read above saw the row before any of them wrote it).
                moved = await session.exec(
                    update(Message)
                    .where(col(Message.id) == message.id, ~col(Message.clicked))
                    .values(clicked=True)
                )
                first = moved.rowcount == 1
            session.add(
                Click(
                    code=code,
                    message_id=link.message_id,
                    user_agent=(request.user_agent or "")[:500] or None,
                    bot=bot,
                    ip_hash=ip_hash(self._ip_key, request.address),
                    at=now,
                )
            )
            if message is not None and first:
                publish(session, self._sinks, EventKind.CLICKED, message=message, at=now)
            await session.commit()
            target, workflow_id = link.target_url, message.workflow_id if message else None
        log.info("link_clicked", code=code, message_id=link.message_id, first=first, bot=bot)
        CLICKS.labels("false" if bot else "true", bot or "").inc()
        if first and workflow_id:
            await signal_journey(
                self._client, workflow_id, MessageUpdate(message_id=link.message_id, kind="click", url=target)
            )
        return target
