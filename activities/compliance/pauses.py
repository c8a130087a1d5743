"""Paused scopes: a template, signature, journey or route whose marketing sends the gate holds.

A pause is opened by the complaint-rate breaker (``complaints.py``, source ``auto``) or by ops
(``nudge pause``, ``POST /v1/pauses``, source ``manual``), and lasts until it is resumed. Every
pause and resume is kept in ``pause_event``, with who, when and why.

The send gate reads pauses through ``PauseCache``: at most one query per ``ttl`` (1 s) per worker
lane, so a pause takes effect within about a second and sends pay no extra round trip each.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.errors import InvalidInput
from nudge.metrics import PAUSES
from nudge.store import Pause, PauseEvent, read_sessions, utcnow


class Scope(StrEnum):
    """What a pause holds: marketing sends with this template, signature, journey or route."""

    TEMPLATE = "template"
    SIGNATURE = "signature"
    JOURNEY = "journey"
    ROUTE = "route"


class Source(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


PAUSED = "paused:"
"""Reason prefix of a message the gate held for a paused scope: ``paused:template=cart_reminder``."""


@dataclass(frozen=True, slots=True)
class Figures:
    """A scope's complaints and marketing messages sent over the window, and their ratio."""

    complaints: int
    sent: int

    @property
    def rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0


class AlreadyPaused(InvalidInput):
    """The scope is paused already; ``pause`` is the pause in effect."""

    def __init__(self, pause: Pause) -> None:
        super().__init__(f"{pause.scope} {pause.value!r} is already paused ({pause.source}: {pause.reason})")
        self.pause = pause


class NotPaused(InvalidInput):
    """There is no pause on this scope to resume."""

    def __init__(self, scope: Scope, value: str) -> None:
        super().__init__(f"{scope.value} {value!r} is not paused")
        self.scope = scope
        self.value = value


def paused_reason(pause: Pause) -> str:
    """The message's reason when the gate holds it for ``pause``."""
    return f"{PAUSED}{pause.scope}={pause.value}"


async def pause(
    sessions: async_sessionmaker[AsyncSession],
    *,
    scope: Scope,
    value: str,
    reason: str,
    source: Source,
    by: str,
    figures: Figures | None = None,
) -> Pause:
    """Pause the scope and record who did it and why. Raises ``AlreadyPaused`` if it is paused
    (the primary key settles a race between the gateway and the worker: one pause, one alert)."""
    complaints, sent = (figures.complaints, figures.sent) if figures else (None, None)
    rate = round(figures.rate, 6) if figures else None
    row = Pause(
        scope=scope.value,
        value=value,
        reason=reason,
        source=source.value,
        created_by=by,
        complaints=complaints,
        sent=sent,
        rate=rate,
    )
    event = PauseEvent(
        scope=scope.value,
        value=value,
        action="paused",
        source=source.value,
        reason=reason,
        by=by,
        complaints=complaints,
        sent=sent,
        rate=rate,
    )
    async with sessions() as session:
        session.add_all([row, event])
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            existing = await session.get(Pause, (scope.value, value))
            if existing is None:
                raise
            raise AlreadyPaused(existing) from None
    PAUSES.labels(scope.value, source.value).inc()
    return row


async def resume(
    sessions: async_sessionmaker[AsyncSession],
    *,
    scope: Scope,
    value: str,
    reason: str | None,
    by: str,
    clock: Callable[[], datetime] = utcnow,
) -> Pause:
    """Lift the pause and record who did it and why; returns the pause that was lifted. Raises
    ``NotPaused`` when there is none. A resume restarts the breaker's window for the scope, from
    ``clock()``: a test that fixes the breaker's clock gives the same one here."""
    async with sessions() as session:
        row = await session.get(Pause, (scope.value, value))
        if row is None:
            raise NotPaused(scope, value)
        await session.delete(row)
        session.add(
            PauseEvent(
                scope=scope.value,
                value=value,
                at=clock(),
                action="resumed",
                source=Source.MANUAL.value,
                reason=reason,
                by=by,
            )
        )
        await session.commit()
    return row


async def current_pauses(sessions: async_sessionmaker[AsyncSession]) -> Sequence[Pause]:
    """The pauses in effect, oldest first."""
    async with read_sessions(sessions)() as session:
        return (await session.exec(select(Pause).order_by(col(Pause.created_at)))).all()


async def pause_history(
    sessions: async_sessionmaker[AsyncSession], *, limit: int = 100
) -> Sequence[PauseEvent]:
    """Pauses and resumes, newest first."""
    async with read_sessions(sessions)() as session:
        query = select(PauseEvent).order_by(col(PauseEvent.at).desc(), col(PauseEvent.id).desc()).limit(limit)
        return (await session.exec(query)).all()


async def last_resumed(session: AsyncSession, scope: Scope, value: str) -> datetime | None:
    """When the scope was last resumed: the breaker counts only what came after."""
    query = (
        select(PauseEvent.at)
        .where(PauseEvent.scope == scope.value, PauseEvent.value == value, PauseEvent.action == "resumed")
        .order_by(col(PauseEvent.at).desc())
        .limit(1)
    )
    return (await session.exec(query)).first()


class PauseCache:
    """The pauses in effect, read from the store at most once per ``ttl`` seconds.

    Concurrent sends that find it stale share one read.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reads = read_sessions(sessions)
        self._ttl = ttl
        self._clock = clock
        self._pauses: dict[tuple[str, str], Pause] = {}
        self._fresh_until = -math.inf
        self._lock = asyncio.Lock()

    async def find(self, *scopes: tuple[Scope, str | None]) -> Pause | None:
        """The first pause in effect on one of ``scopes`` (a value of None is skipped)."""
        pauses = await self._current()
        for scope, value in scopes:
            if value is not None and (found := pauses.get((scope.value, value))) is not None:
                return found
        return None

    async def _current(self) -> dict[tuple[str, str], Pause]:
        if self._clock() < self._fresh_until:
            return self._pauses
        async with self._lock:
            if self._clock() >= self._fresh_until:
                async with self._reads() as session:
                    rows = (await session.exec(select(Pause))).all()
                self._pauses = {(row.scope, row.value): row for row in rows}
                self._fresh_until = self._clock() + self._ttl
        return self._pauses
