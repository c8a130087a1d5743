"""The stream's outbox: ``publish`` writes one row per sink that wants the event, in the caller's
transaction, with the same event id everywhere and personal data only where a sink opted in."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.sinks import EventKind, StreamSink, StreamWebhook
from nudge.store import Message, StreamEvent, publish, session_factory

SECRET = SecretStr("a-secret-of-16-chars")
PLAIN = StreamWebhook(name="crm", url="https://crm.example/h", secret=SECRET)
PII = StreamWebhook(name="dwh", url="https://dwh.example/h", secret=SECRET, include_pii=True)
CLICKS_ONLY = StreamWebhook(
    name="ads", url="https://ads.example/h", secret=SECRET, kinds=frozenset({EventKind.CLICKED})
)


def a_message() -> Message:
    return Message(
        idempotency_key=f"wf-1/{uuid.uuid4().hex}",
        workflow_id="wf-1",
        journey="cart_abandonment",
        step="send:cart_reminder",
        customer_id="cust-1",
        template="cart_reminder",
        variant="b",
        category="marketing",
        to="+8613800138000",
        body="Ada, your cart is waiting",
        segments=1,
        provider="aliyun",
        route="aliyun-cn",
        status="delivered",
        cost=0.045,
        currency="CNY",
    )


async def published(
    engine: AsyncEngine, sinks: Sequence[StreamSink], kind: EventKind, *, commit: bool = True
) -> list[StreamEvent]:
    sessions: async_sessionmaker[AsyncSession] = session_factory(engine)
    async with sessions() as session:
        message = a_message()
        session.add(message)
        publish(session, sinks, kind, message=message, reason=None)
        if commit:
            await session.commit()
        else:
            await session.rollback()
    async with sessions() as session:
        return list((await session.exec(select(StreamEvent).order_by(col(StreamEvent.id)))).all())


async def test_publish_without_a_sink_writes_nothing(engine: AsyncEngine) -> None:
    """No sink configured (or none that wants the kind): not a row."""
    assert await published(engine, [], EventKind.DELIVERED) == []
    assert await published(engine, [CLICKS_ONLY], EventKind.DELIVERED) == []


async def test_publish_sends_the_number_and_text_only_where_a_sink_opted_in(engine: AsyncEngine) -> None:
    """One row per sink with one event id; the plain sink's body has the message's facts and
    neither its number nor its text, the opted-in sink's has both."""
    plain, pii = await published(engine, [PLAIN, PII, CLICKS_ONLY], EventKind.DELIVERED)
    assert (plain.sink, pii.sink) == ("crm", "dwh")
    assert plain.event_id == pii.event_id == plain.body["id"] and len(plain.event_id) == 32
    assert (plain.kind, plain.customer_id, plain.attempts, plain.delivered_at) == (
        "delivered",
        "cust-1",
        0,
        None,
    )
    facts = {
        key: plain.body[key] for key in ("kind", "customer_id", "journey", "template", "variant", "route")
    }
    assert facts == {
        "kind": "delivered",
        "customer_id": "cust-1",
        "journey": "cart_abandonment",
        "template": "cart_reminder",
        "variant": "b",
        "route": "aliyun-cn",
    }
    assert (plain.body["cost"], plain.body["currency"], plain.body["segments"]) == (0.045, "CNY", 1)
    assert "to" not in plain.body and "body" not in plain.body
    assert "8613800138000" not in str(plain.body) and "cart is waiting" not in str(plain.body)
    assert (pii.body["to"], pii.body["body"]) == ("+8613800138000", "Ada, your cart is waiting")
    assert {k: v for k, v in pii.body.items() if k not in ("to", "body")} == plain.body


async def test_publish_rolls_back_with_the_fact_it_records(engine: AsyncEngine) -> None:
    """The event is in the caller's transaction: a rollback takes it away with the fact."""
    assert await published(engine, [PLAIN], EventKind.CLICKED, commit=False) == []


async def test_publish_turns_numbers_json_has_not_into_null(engine: AsyncEngine) -> None:
    """A NaN or an infinity among an event's fields (at any depth) is stored as null: the event
    commits on PostgreSQL too (whose JSON refuses them), and its body stays valid JSON."""
    sessions: async_sessionmaker[AsyncSession] = session_factory(engine)
    async with sessions() as session:
        publish(
            session,
            [PLAIN],
            EventKind.CONVERTED,
            revenue=float("nan"),
            more={"up": float("inf"), "down": [1.5, float("-inf")]},
        )
        await session.commit()
    async with sessions() as session:
        [row] = (await session.exec(select(StreamEvent))).all()
    assert (row.body["revenue"], row.body["more"]) == (None, {"up": None, "down": [1.5, None]})
    json.dumps(row.body, allow_nan=False)
