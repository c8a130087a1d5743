"""Consent: each customer's current consent per channel and purpose, and its audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy import Index
from sqlmodel import Field, SQLModel, col

from nudge.store.columns import timestamp


class ConsentBase(SQLModel):
    channel: str = Field(default="sms", max_length=20)
    purpose: str = Field(default="marketing", max_length=40)
    source: str = Field(max_length=200)
    """Where it was given or withdrawn: ``checkout_form``, ``import:crm``, ``reply:aliyun``..."""
    text: str = ""
    """The wording the customer saw (or the reply they sent)."""


class Consent(ConsentBase, table=True):
    """A customer's current consent for one channel and purpose: what the gate reads."""

    customer_id: str = Field(primary_key=True, max_length=200)
    channel: str = Field(default="sms", primary_key=True, max_length=20)
    purpose: str = Field(default="marketing", primary_key=True, max_length=40)
    granted: bool
    at: datetime = timestamp(nullable=False)
    """When it was given or withdrawn."""
    updated_at: datetime = timestamp(nullable=False)


def consent_key(customer_id: str, channel: str = "sms", purpose: str = "marketing") -> dict[str, str]:
    """The primary key of a ``Consent`` row, for ``session.get`` (named: column order is not ours)."""
    return {"customer_id": customer_id, "channel": channel, "purpose": purpose}


class ConsentEvent(ConsentBase, table=True):
    """The audit trail: every grant and withdrawal, as recorded, never updated."""

    __tablename__ = "consent_event"
    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True, max_length=200)
    action: str
    """``granted`` or ``withdrawn``."""
    actor: str | None = None
    """Who recorded it (an API caller, ``nudge consent``, the reply webhook)."""
    at: datetime = timestamp(nullable=False)
    recorded_at: datetime = timestamp(nullable=False)


class ConsentIn(BaseModel):
    """A consent given or withdrawn: where, with what wording, when, and by whom recorded."""

    source: str = PydanticField(min_length=1, max_length=200, examples=["checkout_form"])
    text: str = PydanticField(
        default="", max_length=2000, examples=["Send me offers by SMS. Reply STOP to opt out."]
    )
    channel: Literal["sms"] = "sms"
    purpose: Literal["marketing"] = "marketing"
    at: datetime | None = None
    """When the customer gave or withdrew it; now, if not given."""
    actor: str | None = PydanticField(default=None, max_length=200)


# Audiences select by consent state: an index-only scan of one purpose's grants (or withdrawals).
Index(
    "ix_consent_purpose_granted",
    col(Consent.channel),
    col(Consent.purpose),
    col(Consent.granted),
    col(Consent.customer_id),
)
