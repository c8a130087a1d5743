"""The suppression list on the real store (SQLite and PostgreSQL): keyed by the number's hash, an
opt-out never narrows a block of every message, and an invalid number widens an opt-out."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.store import Suppression, session_factory, suppress
from nudge.store.suppression import SUPPRESS_ALL

NUMBER = "+8613800138000"


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


async def step(
    sessions: async_sessionmaker[AsyncSession], *, reason: str, source: str, scope: str | None = None
) -> bool:
    async with sessions() as session:
        changed = await suppress(session, NUMBER, reason=reason, source=source, scope=scope)
        await session.commit()
    return changed


async def rows(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str, str, str | None]]:
    async with sessions() as session:
        found = (await session.exec(select(Suppression))).all()
    return [(r.phone_hash, r.reason, r.source, r.scope) for r in found]


async def test_the_first_opt_out_is_stored_by_hash_and_a_repeat_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The key is SHA-256 of "nudge-suppression:" and the number (never the number itself); a second
    STOP keeps the first reason."""
    digest = hashlib.sha256(f"nudge-suppression:{NUMBER}".encode()).hexdigest()
    assert await step(sessions, reason="stop_reply", source="twilio") is True
    assert await step(sessions, reason="provider_opt_out", source="aliyun") is False
    assert await rows(sessions) == [(digest, "stop_reply", "twilio", None)]


async def test_an_invalid_number_widens_an_opt_out_and_an_opt_out_never_narrows_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """opt-out, then invalid: widened to ``all`` (True); then opt-out or invalid again: unchanged."""
    digest = hashlib.sha256(f"nudge-suppression:{NUMBER}".encode()).hexdigest()
    assert await step(sessions, reason="stop_reply", source="twilio") is True
    assert await step(sessions, reason="provider:21211", source="twilio", scope=SUPPRESS_ALL) is True
    assert await rows(sessions) == [(digest, "provider:21211", "twilio", SUPPRESS_ALL)]
    assert await step(sessions, reason="stop_reply", source="tencent") is False
    assert await step(sessions, reason="provider:other", source="aliyun", scope=SUPPRESS_ALL) is False
    assert await rows(sessions) == [(digest, "provider:21211", "twilio", SUPPRESS_ALL)]
