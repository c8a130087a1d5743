"""Column types and field helpers that every table shares: timestamps are timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, TypeDecorator
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamps on every backend (SQLite hands them back naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Store UTC on every backend (SQLite would drop an offset; a naive value means UTC)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def timestamp(**column: Any) -> Any:
    """A timestamp that defaults to now; ``column`` goes to its ``Column`` (``nullable``, ``index``)."""
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), **column))


def optional_timestamp() -> Any:
    """A nullable timestamp with no default (when something happened, if it has)."""
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
