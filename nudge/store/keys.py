"""API keys: who may call the gateway, and with which scopes (``nudge.apikeys``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from nudge.store.columns import optional_timestamp, timestamp


class ApiKeyBase(SQLModel):
    prefix: str = Field(primary_key=True, max_length=16)
    """The key's public part (``nk_<prefix>_...``): logs and audits name a key by it."""
    name: str = Field(max_length=100, index=True)
    """Who holds it (``checkout-service``); the audit trails record it as who acted."""
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(max_length=200)


class ApiKey(ApiKeyBase, table=True):
    """One API key. Only the digest of the key is kept; it is shown once, when it is made."""

    __tablename__ = "api_key"
    digest: str = Field(max_length=64)
    created_at: datetime = timestamp(nullable=False)
    revoked_at: datetime | None = optional_timestamp()
    revoked_by: str | None = Field(default=None, max_length=200)
