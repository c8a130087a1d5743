"""The customer profile: what the CRM reads, the gateway upserts and the gate checks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from nudge.store.columns import timestamp


class CustomerBase(SQLModel):
    name: str | None = None
    phone: str | None = Field(default=None, index=True)
    lifecycle_stage: str = "new"
    country: str | None = None
    timezone: str | None = None


class Customer(CustomerBase, table=True):
    id: str = Field(primary_key=True, max_length=200)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = timestamp(nullable=False)
