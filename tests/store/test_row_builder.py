"""``nudge.store.columns``. ``RowBuilder``: a new row built as the ORM loads one is the row the
model's constructor builds, and the session stores it and tracks later changes to it as usual.
The timestamp columns: UTC-aware on every backend, bound as UTC whatever the offset given."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from nudge.store import Link, Message, RowBuilder, session_factory
from nudge.store.columns import UTCDateTime, optional_timestamp, timestamp, utcnow

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


def test_a_model_with_relationships_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Relationships need the constructor's set-up (back-references, collections)."""

    class Owner(SQLModel):
        name: str = ""

    monkeypatch.setattr(Owner, "__sqlmodel_relationships__", {"orders": object()})
    with pytest.raises(TypeError, match="Owner has relationships"):
        RowBuilder(Owner)


def test_every_field_given_is_accepted() -> None:
    at = datetime(2026, 12, 3, tzinfo=UTC)
    everything = {name: None for name in Message.model_fields} | VALUES | {"id": "m1", "created_at": at}
    row = RowBuilder(Message)(**everything)
    assert row.model_fields_set == set(Message.model_fields)
    assert (row.id, row.status, row.created_at) == ("m1", None, at)


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


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone 8 hours ahead of UTC, so that local time and UTC differ."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.usefixtures("far_from_utc")
def test_a_naive_time_is_bound_as_utc_not_as_local_time() -> None:
    bound = UTCDateTime().process_bind_param(datetime(2026, 12, 3, 10, 0), None)
    assert bound == datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    assert bound is not None and bound.utcoffset() == timedelta(0)


@pytest.mark.usefixtures("far_from_utc")
def test_a_time_with_an_offset_is_bound_in_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    bound = UTCDateTime().process_bind_param(datetime(2026, 12, 3, 18, 0, tzinfo=beijing), None)
    assert bound is not None
    assert (bound.replace(tzinfo=None), bound.utcoffset()) == (datetime(2026, 12, 3, 10, 0), timedelta(0))
    assert UTCDateTime().process_bind_param(None, None) is None


def test_a_timestamp_defaults_to_now_in_a_utc_column_with_its_options() -> None:
    field = timestamp(nullable=False, index=True)
    assert field.default_factory is utcnow
    assert isinstance(field.sa_column.type, UTCDateTime)
    assert (field.sa_column.nullable, field.sa_column.index) == (False, True)


def test_an_optional_timestamp_is_none_in_a_nullable_utc_column() -> None:
    field = optional_timestamp()
    assert field.default is None and field.default_factory is None
    assert isinstance(field.sa_column.type, UTCDateTime)
    assert field.sa_column.nullable is True
