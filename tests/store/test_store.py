from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from nudge.store import (
    Customer,
    EventRecord,
    Message,
    MessageStatusChange,
    create_engine,
    init_db,
    session_factory,
)

TABLES = {
    "customer",
    "event",
    "journey_entry",
    "message",
    "message_status_change",
    "link",
    "click",
    "inbound_message",
    "suppressed_number",
    "consent",
    "consent_event",
    "sms_template",
    "sms_signature",
    "complaint",
    "send_pause",
    "pause_event",
}
"""Every table Nudge keeps, written out: a model that init_db stops creating fails here."""


def _message(key: str, **fields: Any) -> Message:
    return Message(
        idempotency_key=key,
        workflow_id="journey:cart_abandonment:c1:k1",
        journey="cart_abandonment",
        step="send:cart_reminder",
        customer_id="c1",
        template="cart_reminder",
        category="marketing",
        **fields,
    )


async def test_init_db_creates_every_table_once(db_url: str) -> None:
    """init_db creates all Nudge tables on an empty database, and running it again (every start
    of the gateway and the worker) keeps the rows they hold."""
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            before = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        await init_db(engine)
        async with session_factory(engine)() as session:
            session.add(Customer(id="c1", phone="+8613800138000"))
            await session.commit()
        await init_db(engine)
        async with engine.connect() as conn:
            after = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        async with session_factory(engine)() as session:
            kept = await session.get(Customer, "c1")
    finally:
        await engine.dispose()
    assert before.isdisjoint(TABLES)
    assert after >= TABLES
    assert kept is not None and kept.phone == "+8613800138000"


async def test_message_duplicate_idempotency_key_raises_integrity_error(
    engine: AsyncEngine,
) -> None:
    """Two messages with one idempotency key cannot both be stored: the database refuses it."""
    sessions = session_factory(engine)
    async with sessions() as session:
        session.add(_message("wf/run/1"))
        await session.commit()
    async with sessions() as session:
        session.add(_message("wf/run/1"))
        with pytest.raises(IntegrityError):
            await session.commit()
    async with sessions() as session:
        session.add(_message("wf/run/2"))
        await session.commit()


async def test_json_columns_round_trip(engine: AsyncEngine) -> None:
    """Nested dicts, lists, unicode and numbers in JSON columns read back exactly as written."""
    attributes = {"tier": "gold", "tags": ["vip", "早鸟"], "score": 4.5, "nested": {"ok": True}}
    properties = {"cart_id": "k1", "items": [{"sku": "A1", "qty": 2}], "total": None}
    raw = {"id": "SIM1", "status": "delivered", "error_code": None}
    sessions = session_factory(engine)
    async with sessions() as session:
        session.add(Customer(id="c1", attributes=attributes))
        session.add(
            EventRecord(
                event_id="e1",
                customer_id="c1",
                name="cart_abandoned",
                properties=properties,
                workflow_ids=["journey:cart_abandonment:c1:k1"],
            )
        )
        session.add(MessageStatusChange(provider="simulator", status="delivered", raw=raw))
        await session.commit()

    async with sessions() as session:
        customer = await session.get(Customer, "c1")
        event = await session.get(EventRecord, "e1")
        change = await session.get(MessageStatusChange, 1)
    assert customer is not None and customer.attributes == attributes
    assert event is not None
    assert event.properties == properties
    assert event.workflow_ids == ["journey:cart_abandonment:c1:k1"]
    assert change is not None and change.raw == raw


@pytest.mark.parametrize(
    "written",
    [
        datetime(2025, 3, 1, 12, 30, 15, tzinfo=UTC),
        datetime(2025, 3, 1, 20, 30, 15, tzinfo=timezone(timedelta(hours=8))),  # Beijing time
        datetime(2025, 3, 1, 12, 30, 15),  # naive: taken as UTC on every backend
    ],
)
async def test_timestamps_keep_their_instant(engine: AsyncEngine, written: datetime) -> None:
    """A stored timestamp reads back, in UTC, as the same instant, whatever its offset and backend
    (SQLite would drop an offset if the store did not convert it first)."""
    sessions = session_factory(engine)
    async with sessions() as session:
        session.add(Customer(id="c1", created_at=written))
        await session.commit()
    async with sessions() as session:
        customer = await session.get(Customer, "c1")
    assert customer is not None
    assert customer.created_at.tzinfo is not None
    assert customer.created_at == datetime(2025, 3, 1, 12, 30, 15, tzinfo=UTC)
