"""The template and signature registry: what may be sent, in which wording, and its review."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from nudge.store.columns import optional_timestamp, timestamp


class SmsTemplate(SQLModel, table=True):
    """One language variant of a message template, and where it stands in review.

    ``language`` is ``""`` for the default variant (``nudge.templates.DEFAULT_LANGUAGE``). Only an
    approved variant is sent; editing the text of any variant makes it a draft again.
    """

    __tablename__ = "sms_template"
    code: str = Field(primary_key=True, max_length=100)
    language: str = Field(default="", primary_key=True, max_length=35)
    body: str
    category: str
    provider_codes: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))
    """Provider name -> the code that provider's console gave this text."""
    signature: str | None = None
    """The signature this template is bound to (else the route's)."""
    status: str = "draft"
    reason: str | None = None
    """Why it was rejected."""
    version: int = 1
    """Goes up with every change of the text, category, codes or signature."""
    created_at: datetime = timestamp(nullable=False)
    updated_at: datetime = timestamp(nullable=False)
    approved_at: datetime | None = optional_timestamp()
    changed_by: str | None = Field(default=None, max_length=200)
    """Who made the last change (the put, submit, approve or reject): an API key's name."""


class SmsSignature(SQLModel, table=True):
    """A signature (Aliyun and Tencent SignName) or sender (a Twilio number), and its review."""

    __tablename__ = "sms_signature"
    name: str = Field(primary_key=True, max_length=100)
    status: str = "draft"
    reason: str | None = None
    created_at: datetime = timestamp(nullable=False)
    updated_at: datetime = timestamp(nullable=False)
    approved_at: datetime | None = optional_timestamp()
    changed_by: str | None = Field(default=None, max_length=200)
    """Who made the last change: an API key's name."""
