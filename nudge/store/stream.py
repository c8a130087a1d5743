"""The stream's outbox: one row per event and sink, written in the transaction that records the
fact it reports, and marked delivered once the sink took it.

Writers call ``publish`` next to their own write; the gateway's dispatcher (``starter.stream``)
reads the due rows and delivers them. With no sink configured ``publish`` writes nothing.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.phone import phone_hash
from nudge.sinks import PII_FIELDS, EventKind, StreamSink
from nudge.store.columns import optional_timestamp, timestamp, utcnow
from nudge.store.messages import Message


class StreamEvent(SQLModel, table=True):
    """One event waiting for (or delivered to) one sink; ``event_id`` is the same in every sink,
    and a receiver deduplicates by it."""

    __tablename__ = "stream_event"
    __table_args__ = (UniqueConstraint("sink", "event_id"),)
    id: int | None = Field(default=None, primary_key=True)
    sink: str = Field(max_length=100)
    event_id: str = Field(max_length=32)
    kind: str = Field(max_length=40)
    customer_id: str | None = Field(default=None, index=True)
    """Whose event it is, so that erasing the customer clears the personal data in its body."""
    phone_hash: str | None = Field(default=None, max_length=64, index=True)
    """``nudge.phone.phone_hash`` of the number in its personal fields (``to`` or ``from``), on the
    rows that carry them (``include_pii``), so that erasure finds the events of a number no customer
    had yet (a reply's)."""
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """The event as the sink gets it."""
    created_at: datetime = timestamp(nullable=False)
    attempts: int = 0
    next_attempt_at: datetime = timestamp(nullable=False)
    """When the dispatcher may try it (again); while a delivery is under way, the end of its lease."""
    delivered_at: datetime | None = optional_timestamp()
    last_error: str | None = None
    refusals: int | None = 0
    """How many times the sink refused this event on its own, for good (a 4xx such as 400 or 413,
    ``starter.stream``); None on rows from before the column, which counts as 0."""
    parked_at: datetime | None = optional_timestamp()
    """When the dispatcher gave up on it after ``NUDGE_STREAM_MAX_REFUSALS`` refusals: it is kept
    (never pruned) for an operator to look at, and not offered to the sink again."""


# The dispatcher's scan: a sink's rows neither delivered nor parked that are due, in id order. Only
# those are in the index, so it stays small however many delivered ones the retention keeps.
LIVE = col(StreamEvent.delivered_at).is_(None) & col(StreamEvent.parked_at).is_(None)
Index(
    "ix_stream_event_live",
    col(StreamEvent.sink),
    col(StreamEvent.next_attempt_at),
    col(StreamEvent.id),
    postgresql_where=LIVE,
    sqlite_where=LIVE,
)
Index("ix_stream_event_delivered_at", col(StreamEvent.delivered_at))


def message_fields(message: Message) -> dict[str, Any]:
    """What an event says of its message: everything but the number and the text."""
    return {
        "message_id": message.id,
        "customer_id": message.customer_id,
        "workflow_id": message.workflow_id,
        "journey": message.journey,
        "step": message.step,
        "template": message.template,
        "variant": message.variant,
        "category": message.category,
        "route": message.route,
        "provider": message.provider,
        "provider_message_id": message.provider_message_id,
        "status": message.status,
        "reason": message.reason,
        "error_code": message.error_code,
        "segments": message.segments,
        "cost": message.cost,
        "currency": message.currency,
    }


def publish(
    session: AsyncSession,
    sinks: Sequence[StreamSink],
    kind: EventKind,
    *,
    message: Message | None = None,
    at: datetime | None = None,
    pii: Mapping[str, Any] | None = None,
    **fields: Any,
) -> str | None:
    """Add the event to the outbox of every sink that wants it, in ``session``'s transaction (not
    committed). Returns the event's id, or None when no sink wants it.

    Args:
        session: The transaction that records the fact; the event commits or rolls back with it.
        sinks: The configured sinks.
        kind: What happened.
        message: The message it happened to; its fields fill the event (``fields`` win).
        at: When it happened; now when not given.
        pii: The personal fields (``to``, ``body``, ``from``, ``text``), only for sinks with
            ``include_pii``; a message's number and text when not given.
        **fields: The event's other fields (``reason``, ``revenue``...), JSON-serializable; a
            float that is not finite (NaN, infinity) becomes null, since JSON has no such number.
    """
    wanting = [sink for sink in sinks if sink.wants(kind)]
    if not wanting:
        return None
    event_id = uuid.uuid4().hex
    when = at or utcnow()
    body: dict[str, Any] = {"id": event_id, "kind": kind.value, "at": when.isoformat()}
    if message is not None:
        body |= message_fields(message)
    body = finite(body | fields)
    personal = dict(pii) if pii is not None else {}
    if pii is None and message is not None:
        personal = {"to": message.to, "body": message.body}
    assert set(personal) <= PII_FIELDS, f"not a personal field: {set(personal) - PII_FIELDS}"
    personal = finite(personal)
    number = personal.get("from") or personal.get("to")
    hashed = phone_hash(number) if isinstance(number, str) and number else None
    for sink in wanting:
        session.add(
            StreamEvent(
                sink=sink.name,
                event_id=event_id,
                kind=kind.value,
                customer_id=body.get("customer_id"),
                phone_hash=hashed if sink.include_pii else None,
                body=body | personal if sink.include_pii else dict(body),
            )
        )
    return event_id


def finite(value: Any) -> Any:
    """``value`` with every float that is not finite (NaN, infinity) replaced by None, in dicts,
    lists and tuples too: PostgreSQL's JSON refuses them, and JSON has no such number."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value
