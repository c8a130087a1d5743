"""``RowBuilder``: a new row built as the ORM loads one is the row the model's constructor builds,
and the session stores it and tracks later changes to it as usual."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from nudge.store import Link, Message, RowBuilder, session_factory

VALUES = {
    "idempotency_key": "k1",
    "workflow_id": "wf",
    "journey": "broadcast",
    "step": "b1",
    "customer_id": "c1",
    "template": "welcome_back",
    "category": "marketing",
    "to": "+8613800138000",
    "body": "hi",
    "params": {"start_url": "https://s.example/x"},
}


def test_a_built_row_is_the_constructors_row() -> None:
    at = datetime(2026, 12, 3, tzinfo=UTC)
    given = VALUES | {"id": "m1", "created_at": at, "updated_at": at}
    built, made = RowBuilder(Message)(**given), Message(**given)
    assert built.model_dump() == made.model_dump()
    assert built.model_fields_set == made.model_fields_set == set(given)
    assert built.status == "pending" and built.segments == 0 and built.clicked is False


def test_each_row_gets_its_own_default_from_a_factory() -> None:
    build = RowBuilder(Link)
    first, second = (
        build(message_id="m1", target_url="https://a"),
        build(message_id="m1", target_url="https://a"),
    )
    assert first.code and second.code and first.code != second.code
    assert first.created_at.tzinfo is not None


def test_a_model_with_a_mutable_default_is_refused() -> None:
    """Every row would share the one list (the constructor copies it)."""

    class Tagged(SQLModel):
        tags: list[str] = []

    with pytest.raises(TypeError, match="Tagged.tags has a mutable default"):
        RowBuilder(Tagged)


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(TypeError, match="no field 'colour'"):
        RowBuilder(Message)(**VALUES, colour="red")


async def test_the_session_stores_a_built_row_and_its_later_changes(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    row = RowBuilder(Message)(**VALUES)
    async with sessions() as session:
        session.add(row)
        await session.commit()
        row.status = "submitted"  # tracked: the commit writes it
        row.provider_message_id = "p1"
        await session.commit()
    async with sessions() as session:
        stored = await session.get(Message, row.id)
    assert stored is not None
    assert (stored.status, stored.provider_message_id, stored.params) == ("submitted", "p1", VALUES["params"])
    assert (stored.to, stored.body) == ("+8613800138000", "hi")
    assert stored.created_at.utcoffset() == timedelta(0)
