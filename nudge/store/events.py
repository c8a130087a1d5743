"""What the gateway records as events arrive: the events themselves and the journeys they start."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel, col

from nudge.store.columns import timestamp


class EventRecord(SQLModel, table=True):
    """Every accepted event, deduplicated by ``event_id``."""

    __tablename__ = "event"
    event_id: str = Field(primary_key=True, max_length=200)
    customer_id: str = Field(index=True)
    name: str = Field(index=True)
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    occurred_at: datetime = timestamp(nullable=False)
    received_at: datetime = timestamp(nullable=False)
    workflow_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))


class JourneyEntry(SQLModel, table=True):
    """One row per journey instance the gateway started; used for re-entry and routing events."""

    __tablename__ = "journey_entry"
    workflow_id: str = Field(primary_key=True)
    journey: str = Field(index=True)
    customer_id: str = Field(index=True)
    key: str | None = None
    run_id: str | None = None
    entered_at: datetime = timestamp(nullable=False)
    entries: int = 1
    closed: bool = False


# A customer's latest events first, without reading the rest (their timeline).
Index("ix_event_customer_occurred", col(EventRecord.customer_id), col(EventRecord.occurred_at))
