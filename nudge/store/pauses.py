"""Complaints and the pauses they open: what the complaint-rate breaker reads and writes, the
pauses the gate holds sends for, and the audit of every pause and resume."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from nudge.store.columns import timestamp


class Complaint(SQLModel, table=True):
    """A complaint about one marketing message: an opt-out attributed to it, or a provider's
    opt-out, blacklist or carrier-filtering code. One per (message, kind), so a redelivered reply or
    receipt is counted once. The message's scopes are copied, so that evaluating a scope's rate
    reads this table and ``message`` by index only."""

    __table_args__ = (UniqueConstraint("message_id", "kind"),)
    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=64)
    kind: str
    """``opt_out`` (a STOP-type reply) or ``provider_code``."""
    code: str | None = None
    """The provider's code (``21610``, ``30007``...), or the reply's id for an opt-out."""
    template: str
    signature: str | None = None
    journey: str
    route: str | None = None
    at: datetime = timestamp(nullable=False, index=True)


class PauseBase(SQLModel):
    scope: str = Field(primary_key=True, max_length=20)
    """``template``, ``signature``, ``journey`` or ``route``."""
    value: str = Field(primary_key=True, max_length=200)
    reason: str
    source: str
    """``auto`` (the complaint-rate breaker) or ``manual`` (``nudge pause``, the API)."""
    complaints: int | None = None
    """The figures that opened the breaker (an automatic pause): complaints, messages sent, and
    their ratio over the window."""
    sent: int | None = None
    rate: float | None = None
    created_by: str


class Pause(PauseBase, table=True):
    """A scope whose marketing sends the gate holds (``blocked``, reason ``paused:<scope>=<value>``)
    until it is resumed."""

    __tablename__ = "send_pause"
    created_at: datetime = timestamp(nullable=False)


class PauseEventBase(SQLModel):
    scope: str
    value: str
    action: str
    """``paused`` or ``resumed``."""
    source: str
    reason: str | None = None
    by: str
    complaints: int | None = None
    sent: int | None = None
    rate: float | None = None


class PauseEvent(PauseEventBase, table=True):
    """The audit of pauses and resumes: who, when and why (``nudge pauses --history``)."""

    __tablename__ = "pause_event"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = timestamp(nullable=False, index=True)
