"""Short-link clicks: recorded, the message marked clicked, and the first click signalled to the
journey that waits for it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from activities.feedback import signal_journey
from nudge.logging import get_logger
from nudge.models import MessageUpdate
from nudge.store import Click, Link, Message, read_sessions

log = get_logger(__name__)


class Clicks:
    def __init__(self, *, client: Client, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._client = client
        self._sessions = sessions

    async def target(self, code: str) -> str | None:
        """The link's target, or None for an unknown code; records nothing (a HEAD request, a link
        preview or a crawler checking the link is not a click)."""
        async with read_sessions(self._sessions)() as session:
            link = await session.get(Link, code)
        return None if link is None or not link.target_url else link.target_url

    async def follow(self, code: str, *, user_agent: str | None) -> str | None:
        """Record a click and return the target URL, or None for an unknown code."""
        async with self._sessions() as session:
            link = await session.get(Link, code)
            if link is None or not link.target_url:  # unknown, or its customer was erased
                return None
            message = await session.get(Message, link.message_id)
            first = message is not None and not message.clicked
            session.add(Click(code=code, message_id=link.message_id, user_agent=user_agent))
            if message is not None and first:
                message.clicked = True
                session.add(message)
            await session.commit()
            target, workflow_id = link.target_url, message.workflow_id if message else None
        log.info("link_clicked", code=code, message_id=link.message_id, first=first)
        if first and workflow_id:
            await signal_journey(
                self._client, workflow_id, MessageUpdate(message_id=link.message_id, kind="click", url=target)
            )
        return target
