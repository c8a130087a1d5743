"""Funnels: what became of the messages, per journey, step, template, variant, route, signature or
category, from the message rows and the complaints and conversions credited to them.

One pass over ``message``, joined to the complaints and conversions folded into one row per
message, grouped by the dimensions, the status and a blocked message's reason; the parts are added
up per group here (why one pass: ``make bench-funnel``, in README's Development section). Every
rate is over the messages sent (taken by a provider), except the delivery rate's, over the
messages whose fate is known (delivered or undelivered).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, case, func, literal, null, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.models import MessageStatus
from nudge.store import Complaint, Conversion, JourneyEntry, Message, read_sessions


class Dimension(StrEnum):
    JOURNEY = "journey"
    STEP = "step"
    TEMPLATE = "template"
    VARIANT = "variant"
    ROUTE = "route"
    SIGNATURE = "signature"
    CATEGORY = "category"
    BROADCAST = "broadcast"

    @property
    def column(self) -> Any:
        """The message's column this dimension groups and filters by."""
        return col(Message.broadcast_id if self is Dimension.BROADCAST else getattr(Message, self.value))


SENT = [MessageStatus.SUBMITTED, MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED]
"""A provider took it (a refusal at send time is ``failed``, not sent)."""


class FunnelFilter(BaseModel):
    journey: str | None = None
    step: str | None = None
    template: str | None = None
    variant: str | None = Field(default=None, description="As recorded: `experiment:variant`.")
    route: str | None = None
    signature: str | None = None
    category: str | None = None
    broadcast: str | None = Field(default=None, description="A broadcast's id.")
    since: datetime | None = Field(default=None, description="Messages created at or after this time.")
    until: datetime | None = Field(default=None, description="Messages created before this time.")


class Rates(BaseModel):
    delivery: float | None = Field(description="delivered / (delivered + undelivered)")
    click: float | None = Field(description="clicked / sent")
    conversion: float | None = Field(description="converted / sent")
    opt_out: float | None = Field(description="opted_out / sent")
    complaint: float | None = Field(description="complained / sent")


class FunnelRow(BaseModel):
    """One group's funnel. Counts are messages; ``converted`` counts messages credited with at
    least one conversion, ``conversions`` every conversion."""

    group: dict[str, str | None] = Field(description="The group's value for each `group_by` dimension.")
    entered: int | None = Field(
        default=None,
        description="Journey entries, when grouped by journey alone (or not at all) and not limited in time.",
    )
    messages: int = Field(description="Every message the gate decided on.")
    pending: int = Field(description="Not decided yet, or deferred (quiet hours, a provider's limit).")
    blocked: int
    blocked_by: dict[str, int] = Field(
        description="Blocked messages by the reason's kind (`unreachable`...)."
    )
    failed: int = Field(description="Refused by every route it was offered to.")
    sent: int
    delivered: int
    undelivered: int
    clicked: int
    converted: int
    conversions: int
    opted_out: int
    complained: int = Field(description="A provider's complaint or carrier-filtering code.")
    segments: int
    cost: float = Field(description="Segments times each route's price, in `currency`.")
    currency: str | None = Field(description="The routes' currency; `mixed` when they differ.")
    revenue: float = Field(description="The credited conversions' `amount`, summed.")
    revenue_currency: str | None = Field(description="The conversions' `currency`; `mixed` when they differ.")
    cost_per_conversion: float | None
    revenue_per_conversion: float | None
    rates: Rates


def message_filters(filters: FunnelFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses on ``message`` that ``filters`` select (shared by the funnel and the series)."""
    where: list[ColumnElement[bool]] = []
    for dimension in Dimension:
        value = getattr(filters, dimension.value)
        if value is not None:
            where.append(dimension.column == value)
    if filters.since is not None:
        where.append(col(Message.created_at) >= filters.since)
    if filters.until is not None:
        where.append(col(Message.created_at) < filters.until)
    return where


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


_BY_STATUS = {
    s.value
    for s in (
        MessageStatus.PENDING,
        MessageStatus.BLOCKED,
        MessageStatus.FAILED,
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
    )
}
"""The statuses the funnel counts by name (each is also one of ``FunnelRow``'s counts)."""
_SENT_VALUES = {s.value for s in SENT}

_COUNTS = (
    "messages", "pending", "blocked", "failed", "sent", "delivered", "undelivered", "clicked", "converted",
    "conversions", "revenue", "opted_out", "complained", "segments", "cost",
)  # fmt: skip
_ADDED = (
    "messages",
    "clicked",
    "converted",
    "conversions",
    "revenue",
    "opted_out",
    "complained",
    "segments",
    "cost",
)
"""The counts and sums each (status, reason) part of a group adds to the group."""


class Reports:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._reads = read_sessions(sessions)

    async def funnel(self, filters: FunnelFilter, group_by: Sequence[Dimension] = ()) -> list[FunnelRow]:
        """The funnel of every group of messages that ``filters`` select, largest group first."""
        dims = list(dict.fromkeys(group_by))
        keys: list[Any] = [d.column.label(d.value) for d in dims]
        where = message_filters(filters)
        status = col(Message.status)
        # Everything credited to a message, folded into one row per message: its conversions
        # (count, revenue, their currencies) and whether it drew an opt-out or a provider's code.
        # (Lists typed Any: SQLModel's ``select`` is typed for at most four columns.)
        conversion_rows: list[Any] = [
            col(Conversion.message_id).label("message_id"),
            literal(1).label("n"),
            col(Conversion.revenue).label("revenue"),
            col(Conversion.currency).label("currency"),
            literal(0).label("opt_out"),
            literal(0).label("code"),
        ]
        complaint_rows: list[Any] = [
            col(Complaint.message_id),
            literal(0),
            null(),
            null(),
            case((col(Complaint.kind) == "opt_out", 1), else_=0),
            case((col(Complaint.kind) == "provider_code", 1), else_=0),
        ]
        credited = union_all(select(*conversion_rows), select(*complaint_rows)).subquery()
        per_message: list[Any] = [
            credited.c.message_id,
            func.sum(credited.c.n).label("n"),
            func.sum(credited.c.revenue).label("revenue"),
            func.min(credited.c.currency).label("currency"),
            func.max(credited.c.currency).label("other_currency"),
            func.max(credited.c.opt_out).label("opt_out"),
            func.max(credited.c.code).label("code"),
        ]
        credits = select(*per_message).group_by(credited.c.message_id).subquery()
        # One pass over ``message``, grouped by status too (and a blocked message's reason): the
        # counts per status and the blocked messages by reason are added up below, per group.
        blocked_reason = case((status == MessageStatus.BLOCKED.value, col(Message.reason))).label(
            "blocked_reason"
        )
        count = func.count()
        figures: list[Any] = [
            status.label("status"),
            blocked_reason,
            count.label("messages"),
            count.filter(col(Message.clicked)).label("clicked"),
            count.filter(credits.c.n > 0).label("converted"),
            func.coalesce(func.sum(credits.c.n), 0).label("conversions"),
            func.coalesce(func.sum(credits.c.revenue), 0.0).label("revenue"),
            count.filter(credits.c.opt_out == 1).label("opted_out"),
            count.filter(credits.c.code == 1).label("complained"),
            func.coalesce(func.sum(Message.segments), 0).label("segments"),
            func.coalesce(func.sum(Message.cost), 0.0).label("cost"),
            func.min(Message.currency).label("currency"),
            func.max(Message.currency).label("other_currency"),
            func.min(credits.c.currency).label("revenue_currency"),
            func.max(credits.c.other_currency).label("other_revenue_currency"),
        ]
        query = (
            select(*keys, *figures)
            .select_from(Message)
            .outerjoin(credits, credits.c.message_id == col(Message.id))
            .where(*where)
            .group_by(*keys, status, blocked_reason)
        )
        async with self._reads() as session:
            # Core statements on the session's connection (SQLModel's ``exec`` types only its own).
            connection = await session.connection()
            rows = (await connection.execute(query)).mappings().all()
            entered = await self._entered(connection, filters, dims)
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in rows:
            key = tuple(row[d.value] for d in dims)
            if key not in groups:
                groups[key] = dict(zip([d.value for d in dims], key, strict=True)) | {
                    **dict.fromkeys(_COUNTS, 0),
                    "currencies": set(),
                    "revenue_currencies": set(),
                    "blocked_by": defaultdict(int),
                }
            group, n = groups[key], int(row["messages"])
            if row["status"] in _BY_STATUS:
                group[row["status"]] += n
            if row["status"] in _SENT_VALUES:
                group["sent"] += n
            if row["status"] == MessageStatus.BLOCKED.value:
                group["blocked_by"][(row["blocked_reason"] or "unknown").split(":", 1)[0]] += n
            for name in _ADDED:
                group[name] += (float if name in ("cost", "revenue") else int)(row[name] or 0)
            group["currencies"].update(c for c in (row["currency"], row["other_currency"]) if c is not None)
            group["revenue_currencies"].update(
                c for c in (row["revenue_currency"], row["other_revenue_currency"]) if c is not None
            )
        out, seen = [], set()
        for key, group in groups.items():
            seen.add(key)
            # One currency, none, or two that differ (the row says ``mixed``).
            currencies, revenue_currencies = sorted(group["currencies"]), sorted(group["revenue_currencies"])
            group |= {
                "currency": currencies[0] if currencies else None,
                "other_currency": currencies[-1] if currencies else None,
                "revenue_currency": revenue_currencies[0] if revenue_currencies else None,
                "other_revenue_currency": revenue_currencies[-1] if revenue_currencies else None,
            }
            out.append(self._row(group, dims, dict(group["blocked_by"]), entered.get(key)))
        for key in entered.keys() - seen:  # a journey entered, with no message yet
            empty = dict.fromkeys(_COUNTS, 0) | {
                "currency": None,
                "other_currency": None,
                "revenue_currency": None,
                "other_revenue_currency": None,
            }
            out.append(
                self._row(
                    empty | dict(zip([d.value for d in dims], key, strict=True)), dims, {}, entered[key]
                )
            )
        if not dims and out and out[0].messages == 0 and out[0].entered is None:
            return []  # an aggregate without GROUP BY always has a row: none matched
        return sorted(out, key=lambda r: (-r.messages, [str(v) for v in r.group.values()]))

    @staticmethod
    def _row(raw: Any, dims: list[Dimension], blocked_by: dict[str, int], entered: int | None) -> FunnelRow:
        # PostgreSQL sums integers as numeric: every count back to an int, money to a float.
        row = dict(raw) | {k: (float if k in ("cost", "revenue") else int)(raw[k] or 0) for k in _COUNTS}
        sent, converted = row["sent"], row["converted"]
        cost, revenue = float(row["cost"]), float(row["revenue"])
        currency = row["currency"] if row["currency"] == row["other_currency"] else "mixed"
        revenue_currency = row["revenue_currency"]
        if revenue_currency != row["other_revenue_currency"]:
            revenue_currency = "mixed"
        return FunnelRow(
            group={d.value: row[d.value] for d in dims},
            entered=entered,
            messages=row["messages"],
            pending=row["pending"],
            blocked=row["blocked"],
            blocked_by=blocked_by,
            failed=row["failed"],
            sent=sent,
            delivered=row["delivered"],
            undelivered=row["undelivered"],
            clicked=row["clicked"],
            converted=converted,
            conversions=row["conversions"],
            opted_out=row["opted_out"],
            complained=row["complained"],
            segments=row["segments"],
            cost=cost,
            currency=currency,
            revenue=revenue,
            revenue_currency=revenue_currency,
            cost_per_conversion=_ratio(cost, row["conversions"]),
            revenue_per_conversion=_ratio(revenue, row["conversions"]),
            rates=Rates(
                delivery=_ratio(row["delivered"], row["delivered"] + row["undelivered"]),
                click=_ratio(row["clicked"], sent),
                conversion=_ratio(converted, sent),
                opt_out=_ratio(row["opted_out"], sent),
                complaint=_ratio(row["complained"], sent),
            ),
        )

    @staticmethod
    async def _entered(
        connection: AsyncConnection, filters: FunnelFilter, dims: list[Dimension]
    ) -> dict[tuple[Any, ...], int]:
        """Journey entries per journey (the first step of a journey's funnel): only when the report
        is per journey, or one journey's, and filtered by nothing an entry does not have."""
        others = [
            d for d in Dimension if d is not Dimension.JOURNEY and getattr(filters, d.value) is not None
        ]
        if others or any(d is not Dimension.JOURNEY for d in dims):
            return {}
        if filters.since is not None or filters.until is not None:
            # An entry row keeps only its latest entry's time: within a range its count is unknown.
            return {}
        query = select(col(JourneyEntry.journey), func.coalesce(func.sum(JourneyEntry.entries), 0))
        if filters.journey is not None:
            query = query.where(col(JourneyEntry.journey) == filters.journey)
        if filters.since is not None:
            query = query.where(col(JourneyEntry.entered_at) >= filters.since)
        if filters.until is not None:
            query = query.where(col(JourneyEntry.entered_at) < filters.until)
        rows = (await connection.execute(query.group_by(col(JourneyEntry.journey)))).all()
        if dims:
            return {(journey,): int(n) for journey, n in rows}
        return {(): sum(int(n) for _, n in rows)} if rows else {}
