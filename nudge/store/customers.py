"""The customer profile, as one model family: ``CustomerBase`` (the fields every shape shares),
``CustomerCreate`` (what the API accepts: a profile, with the consent given with it),
``CustomerPublic`` (what the API returns) and the table ``Customer``. A journey reads the same
profile as ``nudge.models.Profile``, whose wire shape is fixed by recorded histories.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import field_validator
from sqlalchemy import JSON, Index, String, case, cast, literal, literal_column, or_, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.models import IDENTIFIER_PATTERN
from nudge.quiet_hours import known_zone
from nudge.store.columns import UTCDateTime, optional_timestamp, timestamp
from nudge.store.consent import ConsentIn


class CustomerBase(SQLModel):
    id: str = Field(primary_key=True, min_length=1, max_length=200)
    name: str | None = None
    phone: str | None = Field(default=None, index=True)
    """In E.164 once stored (the gateway converts it)."""
    lifecycle_stage: str = "new"
    country: str | None = None
    timezone: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=True)


class CustomerCreate(CustomerBase):
    # What PUT /v1/customers/{id} and the batch take. No docstring: it would be the schema's
    # description in the OpenAPI document.
    id: str = Field(
        primary_key=True, min_length=1, max_length=200, schema_extra={"pattern": IDENTIFIER_PATTERN}
    )
    consent: ConsentIn | None = None
    """Marketing consent given with the profile (a sign-up form, a CRM import). Recorded only for
    a customer with no consent on record: changes go through ``/v1/customers/{id}/consent``."""

    @field_validator("timezone")
    @classmethod
    def _a_known_zone(cls, value: str | None) -> str | None:
        if value is not None and not known_zone(value):
            raise ValueError(f"{value!r} is not an IANA time zone (Asia/Shanghai, America/New_York)")
        return value


class CustomerPublic(CustomerBase):
    created_at: datetime
    erased_at: datetime | None = None
    last_active_at: datetime | None = None


class Customer(CustomerBase, table=True):
    created_at: datetime = timestamp(nullable=False)
    erased_at: datetime | None = optional_timestamp()
    """When the customer's personal data was removed (``nudge customers forget``)."""
    last_active_at: datetime | None = optional_timestamp()
    """When their latest event occurred: the gateway keeps it with every event it stores
    (``starter/api/services/intake.py``), so that an audience's ``last_active within 30d`` reads
    the profile alone instead of probing the event table once per customer."""


# What audiences select on (``activities/audience_sql.py``). Its conditions are built on these same
# expressions, so that PostgreSQL matches them to the expression indexes; SQLite gets the plain ones.
Index("ix_customer_lifecycle_stage", col(Customer.lifecycle_stage))
Index("ix_customer_country", col(Customer.country))
LANGUAGE = col(Customer.attributes).op("->>", return_type=String)(literal_column("'language'"))
"""``attributes ->> 'language'`` (PostgreSQL)."""
TAGS = cast(col(Customer.attributes), JSONB).op("->", return_type=JSONB)(literal_column("'tags'"))
"""``CAST(attributes AS JSONB) -> 'tags'`` (PostgreSQL), which ``?``, ``?|`` and ``?&`` take, by GIN."""
Index("ix_customer_language", LANGUAGE).ddl_if(dialect="postgresql")
# A cast hides the column from Index, so the table is named.
_tags_index = Index("ix_customer_tags", TAGS, postgresql_using="gin", _table=Customer.__table__)  # type: ignore[attr-defined]
_tags_index.ddl_if(dialect="postgresql")


async def mark_active(session: AsyncSession, customer_id: str, at: datetime) -> bool:
    """Move the customer's ``last_active_at`` up to ``at``, never back; whether they exist.

    One statement in place of reading the row: it stays right when two of their events race,
    whose writes the row's lock (PostgreSQL) or the write lock (SQLite) puts one after the other.
    """
    table = Customer.__table__  # type: ignore[attr-defined]
    last = table.c.last_active_at
    when = literal(at, UTCDateTime())
    moved = await session.exec(  # type: ignore[call-overload]
        update(table)
        .where(table.c.id == customer_id)
        .values(last_active_at=case((or_(last.is_(None), last < when), when), else_=last))
    )
    return bool(moved.rowcount)
