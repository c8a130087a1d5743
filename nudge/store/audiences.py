"""Audiences: saved queries over customer profiles, and the members of uploaded lists.

A query audience keeps its definition (``nudge.audiences``' tree, as JSON) and is evaluated each
time it is read, so it follows the profiles as they change. A list audience keeps its members in
``audience_member``: its primary key (audience, customer id) is the keyset a broadcast pages on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from nudge.store.columns import timestamp


class AudienceBase(SQLModel):
    name: str = Field(primary_key=True, max_length=100)
    kind: str = Field(max_length=10)
    """``query`` (``definition`` says who) or ``list`` (``audience_member`` says who)."""
    definition: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """A query audience's root node (``nudge.audiences.Node``); none for a list."""
    description: str = ""
    created_by: str
    """The API key's name (or ``cli``) that created it, as every admin change records its actor."""
    updated_by: str


class Audience(AudienceBase, table=True):
    created_at: datetime = timestamp(nullable=False)
    updated_at: datetime = timestamp(nullable=False)


class AudienceMember(SQLModel, table=True):
    """One customer of a list audience (only ids that were customers when they were uploaded)."""

    __tablename__ = "audience_member"
    audience: str = Field(primary_key=True, max_length=100)
    customer_id: str = Field(primary_key=True, max_length=200)
