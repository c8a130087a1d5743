"""Consent on the real store (SQLite and PostgreSQL): the current state and the audit trail that
``activities.compliance.consent.record`` writes, ``first_only``, and the trail's order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import literal_column, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance.consent import Action, history, record
from nudge.store import Consent, ConsentEvent, ConsentIn, consent_key, session_factory

GIVEN_AT = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
CHECKOUT = ConsentIn(
    source="checkout_form", text="Offers by SMS. Reply STOP to opt out.", at=GIVEN_AT, actor="shop"
)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


async def _record(
    sessions: async_sessionmaker[AsyncSession],
    customer_id: str,
    action: Action,
    given: ConsentIn,
    *,
    first_only: bool = False,
) -> None:
    async with sessions() as session:
        if first_only:
            await record(session, customer_id, action, given, first_only=True)
        else:  # the default, as the consent API calls it
            await record(session, customer_id, action, given)
        await session.commit()


async def _current(sessions: async_sessionmaker[AsyncSession], customer_id: str) -> Consent | None:
    async with sessions() as session:
        return await session.get(Consent, consent_key(customer_id))


async def _trail(sessions: async_sessionmaker[AsyncSession], customer_id: str) -> list[ConsentEvent]:
    async with sessions() as session:
        return await history(session, customer_id)


async def test_consent_record_writes_the_state_and_one_event_as_given(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A grant with its time, wording and actor is the current state and one audit event, with
    exactly those values."""
    await _record(sessions, "c-1", "granted", CHECKOUT)

    current = await _current(sessions, "c-1")
    assert current is not None
    assert (current.granted, current.source, current.text, current.at, current.channel, current.purpose) == (
        True,
        "checkout_form",
        "Offers by SMS. Reply STOP to opt out.",
        GIVEN_AT,
        "sms",
        "marketing",
    )
    [event] = await _trail(sessions, "c-1")
    assert (
        event.customer_id,
        event.action,
        event.source,
        event.text,
        event.actor,
        event.at,
        event.channel,
        event.purpose,
    ) == (
        "c-1",
        "granted",
        "checkout_form",
        "Offers by SMS. Reply STOP to opt out.",
        "shop",
        GIVEN_AT,
        "sms",
        "marketing",
    )


async def test_consent_record_returns_the_new_state_before_it_is_flushed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The state ``record`` hands back, not yet committed nor flushed, already holds every value."""
    async with sessions() as session:
        current = await record(session, "c-5", "granted", CHECKOUT)
        assert (
            current.customer_id,
            current.channel,
            current.purpose,
            current.granted,
            current.source,
            current.text,
            current.at,
        ) == (
            "c-5",
            "sms",
            "marketing",
            True,
            "checkout_form",
            "Offers by SMS. Reply STOP to opt out.",
            GIVEN_AT,
        )
        await session.rollback()


async def test_consent_withdrawal_replaces_the_state_and_is_dated_now_when_undated(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A withdrawal without a time after a grant: the state is withdrawn with the withdrawal's
    source and (empty) wording, dated when it was recorded; the trail keeps both."""
    await _record(sessions, "c-2", "granted", CHECKOUT)
    before = datetime.now(UTC)
    await _record(sessions, "c-2", "withdrawn", ConsentIn(source="reply:aliyun"))
    after = datetime.now(UTC)

    current = await _current(sessions, "c-2")
    assert current is not None
    assert (current.granted, current.source, current.text) == (False, "reply:aliyun", "")
    assert before <= current.at <= after
    assert before <= current.updated_at <= after
    trail = await _trail(sessions, "c-2")
    assert [(e.action, e.source, e.actor) for e in trail] == [
        ("granted", "checkout_form", "shop"),
        ("withdrawn", "reply:aliyun", None),
    ]
    assert trail[1].at == current.at


async def test_consent_first_only_records_only_when_nothing_is_on_record(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """``first_only`` grants a customer without consent; after a withdrawal it changes nothing and
    adds no event."""
    imported = ConsentIn(source="import:crm", text="Offers by SMS")
    await _record(sessions, "c-3", "granted", imported, first_only=True)
    await _record(sessions, "c-3", "withdrawn", ConsentIn(source="email", at=GIVEN_AT))
    await _record(sessions, "c-3", "granted", imported, first_only=True)

    current = await _current(sessions, "c-3")
    assert current is not None and (current.granted, current.source, current.at) == (False, "email", GIVEN_AT)
    assert [(e.action, e.source) for e in await _trail(sessions, "c-3")] == [
        ("granted", "import:crm"),
        ("withdrawn", "email"),
    ]


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_consent_history_is_in_recording_order_whatever_the_heap_order(engine: AsyncEngine) -> None:
    """The trail lists a customer's events in the order they were recorded even when the table holds
    them the other way round (as after CLUSTER or pg_repack), and only that customer's."""
    sessions = session_factory(engine)
    recorded: list[tuple[Action, str]] = [
        ("granted", "checkout_form"),
        ("withdrawn", "email"),
        ("granted", "app"),
    ]
    for action, source in recorded:
        await _record(sessions, "c-4", action, ConsentIn(source=source, at=GIVEN_AT))
    await _record(sessions, "someone-else", "granted", CHECKOUT)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE INDEX consent_event_newest_first ON consent_event (id DESC)"))
        await conn.execute(text("CLUSTER consent_event USING consent_event_newest_first"))
    async with sessions() as session:
        heap = (
            await session.exec(
                select(ConsentEvent.source)
                .where(col(ConsentEvent.customer_id) == "c-4")
                .order_by(literal_column("ctid"))
            )
        ).all()
    assert list(heap) == ["app", "email", "checkout_form"], "the table should hold the latest event first"

    trail = await _trail(sessions, "c-4")
    assert [(e.action, e.source) for e in trail] == [
        ("granted", "checkout_form"),
        ("withdrawn", "email"),
        ("granted", "app"),
    ]
