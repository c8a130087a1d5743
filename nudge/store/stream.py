"""The stream's outbox: one row per event and sink, written in the transaction that records the
fact it reports, and marked delivered once the sink took it.

Writers call ``publish`` next to their own write; the gateway's dispatcher (``starter.stream``)
reads the due rows and delivers them. With no sink configured ``publish`` writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

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
    customer_id: str | None = None
    """Whose event it is, so that erasing the customer clears the personal data in its body."""
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """The event as the sink gets it."""
    created_at: datetime = timestamp(nullable=False)
    attempts: int = 0
    next_attempt_at: datetime = timestamp(nullable=False)
    """When the dispatcher may try it (again); while a delivery is under way, the end of its lease."""
    delivered_at: datetime | None = optional_timestamp()
    last_error: str | None = None


# The dispatcher's scan: a sink's undelivered rows that are due, in id order. Only undelivered rows
# are in the index, so it stays small however many delivered ones the retention keeps.
Index(
    "ix_stream_event_due",
    col(StreamEvent.sink),
    col(StreamEvent.next_attempt_at),
    col(StreamEvent.id),
    postgresql_where=col(StreamEvent.delivered_at).is_(None),
    sqlite_where=col(StreamEvent.delivered_at).is_(None),
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
        **fields: The event's other fields (``reason``, ``revenue``...), JSON-serializable.
    """
    wanting = [sink for sink in sinks if sink.wants(kind)]
    if not wanting:
        return None
    event_id = uuid.uuid4().hex
    when = at or utcnow()
    body: dict[str, Any] = {"id": event_id, "kind": kind.value, "at": when.isoformat()}
    if message is not None:
        body |= message_fields(message)
    body |= fields
    personal = dict(pii) if pii is not None else {}
    if pii is None and message is not None:
        personal = {"to": message.to, "body": message.body}
    assert set(personal) <= PII_FIELDS, f"not a personal field: {set(personal) - PII_FIELDS}"
    for sink in wanting:
        session.add(
            StreamEvent(
                sink=sink.name,
                event_id=event_id,
                kind=kind.value,
                customer_id=body.get("customer_id"),
                body=body | personal if sink.include_pii else dict(body),
            )
        )
    return event_id
