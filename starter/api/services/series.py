"""Rates over time: per hour or per day, what became of the messages the gate decided on then.

A message falls in the bucket of its ``created_at`` (when the gate decided), so the buckets add up
to the funnel over the same filters. One aggregate query, grouped by the bucket's start: PostgreSQL
truncates with ``date_trunc``; SQLite, which keeps UTC timestamps as ISO text, by ``strftime``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import exists, func
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.models import MessageStatus
from nudge.store import Complaint, Conversion, Message, read_sessions
from starter.api.services.reports import SENT, FunnelFilter, message_filters


class Bucket(StrEnum):
    HOUR = "hour"
    DAY = "day"


class PointRates(BaseModel):
    delivery: float | None = Field(description="delivered / (delivered + undelivered)")
    click: float | None = Field(description="clicked / sent")
    conversion: float | None = Field(description="converted / sent")
    complaint: float | None = Field(description="complained / sent")


class RatePoint(BaseModel):
    """The messages the gate decided on in one hour or day, and what became of them."""

    start: datetime = Field(description="The bucket's start, in UTC.")
    sent: int
    delivered: int
    undelivered: int
    clicked: int
    converted: int = Field(description="Messages credited with at least one conversion.")
    complained: int = Field(description="A provider's complaint or carrier-filtering code.")
    rates: PointRates


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _start(connection: AsyncConnection, bucket: Bucket) -> Any:
    created = col(Message.created_at)
    if connection.dialect.name == "postgresql":
        return func.date_trunc(bucket.value, func.timezone("UTC", created))
    pattern = "%Y-%m-%d 00:00:00" if bucket is Bucket.DAY else "%Y-%m-%d %H:00:00"
    return func.strftime(pattern, created)


def _parse(value: Any) -> datetime:
    start = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)


class Series:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._reads = read_sessions(sessions)

    async def rates(self, filters: FunnelFilter, bucket: Bucket = Bucket.HOUR) -> list[RatePoint]:
        """One point per hour (or day) that has messages, oldest first."""
        status = col(Message.status)
        converted = exists().where(col(Conversion.message_id) == col(Message.id))
        complained = exists().where(
            col(Complaint.message_id) == col(Message.id), col(Complaint.kind) == "provider_code"
        )
        count = func.count()
        async with self._reads() as session:
            connection = await session.connection()
            start = _start(connection, bucket).label("start")
            figures: list[Any] = [
                start,
                count.filter(status.in_([s.value for s in SENT])).label("sent"),
                count.filter(status == MessageStatus.DELIVERED.value).label("delivered"),
                count.filter(status == MessageStatus.UNDELIVERED.value).label("undelivered"),
                count.filter(col(Message.clicked)).label("clicked"),
                count.filter(converted).label("converted"),
                count.filter(complained).label("complained"),
            ]
            query = select(*figures).where(*message_filters(filters)).group_by(start).order_by(start)
            rows = (await connection.execute(query)).mappings().all()
        return [
            RatePoint(
                start=_parse(row["start"]),
                sent=row["sent"],
                delivered=row["delivered"],
                undelivered=row["undelivered"],
                clicked=row["clicked"],
                converted=row["converted"],
                complained=row["complained"],
                rates=PointRates(
                    delivery=_ratio(row["delivered"], row["delivered"] + row["undelivered"]),
                    click=_ratio(row["clicked"], row["sent"]),
                    conversion=_ratio(row["converted"], row["sent"]),
                    complaint=_ratio(row["complained"], row["sent"]),
                ),
            )
            for row in rows
        ]
