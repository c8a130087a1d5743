"""The audit of erasures: which customer was forgotten, when, by whom, and how much of them."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from nudge.store.columns import timestamp


class ErasureBase(SQLModel):
    customer_id: str = Field(index=True, max_length=200)
    by: str = Field(max_length=300)
    """Who asked: the API key's name (and the person it named)."""
    messages: int = 0
    """Messages whose number, body and parameters were removed (the rows stay, for the counts)."""
    replies: int = 0
    events: int = 0
    journeys_ended: int = 0


class Erasure(ErasureBase, table=True):
    """One erasure (GDPR art. 17, PIPL art. 47): recorded, never updated."""

    __tablename__ = "erasure"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = timestamp(nullable=False, index=True)
