"""Messages out and in: the outbound message the gate writes, the receipts that move its status,
its tracked links and their clicks, and the replies customers send back."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel, col

from nudge.store.columns import optional_timestamp, timestamp


def new_message_id() -> str:
    """A new message's id (random hex)."""
    return uuid.uuid4().hex


def new_link_code() -> str:
    """A new short link's code (8 URL-safe characters)."""
    return secrets.token_urlsafe(6)


class Message(SQLModel, table=True):
    """One outbound message; ``idempotency_key`` makes a retried send a no-op."""

    __table_args__ = (UniqueConstraint("idempotency_key"),)
    id: str = Field(default_factory=new_message_id, primary_key=True)
    idempotency_key: str = Field(max_length=400)
    workflow_id: str = Field(index=True)
    journey: str
    step: str
    customer_id: str = Field(index=True)
    template: str
    variant: str | None = None
    category: str
    to: str | None = None
    body: str = ""
    segments: int = 0
    provider: str | None = None
    provider_message_id: str | None = Field(default=None, index=True)
    status: str = "pending"
    error_code: str | None = None
    reason: str | None = None
    notify_receipt: bool = False
    clicked: bool = False
    params: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """The template variables as sent (short links in place), for a resend on another route."""
    route: str | None = None
    signature: str | None = None
    cost: float | None = None
    currency: str | None = None
    defer_until: datetime | None = optional_timestamp()
    """A deferred message: when to try again. A capped one: when its cap has room again."""
    cap_reserved_at: datetime | None = optional_timestamp()
    """When the message took its place under the frequency caps; sent messages count from here."""
    waiting: str | None = None
    """What a pending message's send waits for (a route's lookup grace), for ``nudge journeys``."""
    status_checked_at: datetime | None = optional_timestamp()
    """When the receipt sweep last asked the provider's status API about this message."""
    delivered_at: datetime | None = optional_timestamp()
    """When the delivery receipt arrived (a click within a second of it is a scanner's)."""
    broadcast_id: str | None = None
    """The broadcast that sent it (``journey`` is then ``broadcast``); None for a journey's."""
    batch_ref: str | None = None
    """The client reference of the provider batch call that carried it (a lookup finds it so)."""
    broadcast_pass: int | None = None
    """Which of the broadcast's passes last took it up: 0 the audience's, then one per sweep of
    the deferred (``nudge.broadcasts``)."""
    created_at: datetime = timestamp(nullable=False)
    updated_at: datetime = timestamp(nullable=False)


# The receipt sweep looks for messages left without a final status, oldest change first.
Index("ix_message_status_updated_at", col(Message.status), col(Message.updated_at))
# A broadcast's sweep pages its rows of one pass in customer order; its report counts them.
Index(
    "ix_message_broadcast",
    col(Message.broadcast_id),
    col(Message.broadcast_pass),
    col(Message.customer_id),
)
# Evaluating a complaint scope counts its marketing messages over the window: by scope, then by time.
for _scope in ("template", "signature", "journey", "route"):
    Index(f"ix_message_{_scope}_created_at", getattr(Message, _scope), col(Message.created_at))


class MessageStatusChange(SQLModel, table=True):
    """Every receipt as received, even duplicates and ones that did not change the status."""

    __tablename__ = "message_status_change"
    id: int | None = Field(default=None, primary_key=True)
    message_id: str | None = Field(default=None, index=True)
    provider: str
    provider_message_id: str | None = Field(default=None, index=True)
    status: str
    error_code: str | None = None
    applied: bool = False
    at: datetime = timestamp(nullable=False)
    raw: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class Link(SQLModel, table=True):
    """A tracked short link in a message."""

    code: str = Field(default_factory=new_link_code, primary_key=True)
    message_id: str = Field(index=True)
    target_url: str
    created_at: datetime = timestamp(nullable=False)


class Click(SQLModel, table=True):
    """Every request for a short link, a bot's too: ``bot`` says why one did not count."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(index=True)
    message_id: str = Field(index=True)
    user_agent: str | None = None
    bot: str | None = None
    """Why this was not a person's click (``head``, ``user_agent``, ``too_soon``), or None."""
    ip_hash: str | None = None
    """A keyed hash of the client's address (``nudge.phone``-style: never the address itself)."""
    at: datetime = timestamp(nullable=False)


class InboundMessage(SQLModel, table=True):
    """A reply from a customer (STOP, 退订, R, HELP...), as a provider delivered it."""

    __tablename__ = "inbound_message"
    __table_args__ = (UniqueConstraint("provider", "provider_ref"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str
    provider_ref: str = Field(max_length=200)
    """The provider's id for the reply (MessageSid, sequence_id...); redeliveries share it."""
    from_number: str = Field(index=True)
    to: str | None = None
    """Our number, sign name or extension code the reply was sent to."""
    text: str
    keyword: str | None = None
    """``stop``, ``start`` or ``help`` when the text is one of their keywords."""
    received_at: datetime = timestamp(nullable=False)
    raw: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
