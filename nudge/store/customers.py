"""The customer profile, as one model family: ``CustomerBase`` (the fields every shape shares),
``CustomerPublic`` (what the API returns) and the table ``Customer``. What the API accepts,
``CustomerCreate``, adds the consent given with a profile; it lives with the gateway's upsert
(``starter.api.services.customers``), since the consent's model belongs to the compliance layer,
which the kernel does not import.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from nudge.store.columns import timestamp


class CustomerBase(SQLModel):
    id: str = Field(primary_key=True, min_length=1, max_length=200)
    name: str | None = None
    phone: str | None = Field(default=None, index=True)
    """In E.164 once stored (the gateway converts it)."""
    lifecycle_stage: str = "new"
    country: str | None = None
    timezone: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=True)


class CustomerPublic(CustomerBase):
    created_at: datetime


class Customer(CustomerBase, table=True):
    created_at: datetime = timestamp(nullable=False)
