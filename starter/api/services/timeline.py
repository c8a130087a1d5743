"""One customer's story in time order: every event, journey entry, gate decision (a message and its
status or reason), receipt, click, reply, consent change and conversion.

Read from the store's own rows, newest last; phone numbers in texts are masked. Bounded: at most
``limit`` entries of each kind, the latest ones.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.errors import InvalidInput
from nudge.phone import mask_in_text
from nudge.store import (
    Click,
    ConsentEvent,
    Conversion,
    Customer,
    EventRecord,
    InboundMessage,
    JourneyEntry,
    Message,
    MessageStatusChange,
    read_sessions,
)


class UnknownCustomer(InvalidInput):
    """No customer, event or message has this id."""


class Kind(StrEnum):
    EVENT = "event"
    JOURNEY = "journey"
    MESSAGE = "message"
    RECEIPT = "receipt"
    CLICK = "click"
    REPLY = "reply"
    CONSENT = "consent"
    CONVERSION = "conversion"


class TimelineEntry(BaseModel):
    at: datetime
    kind: Kind
    title: str = Field(description="What happened, in a few words (`welcome_b delivered`).")
    message_id: str | None = None
    workflow_id: str | None = Field(default=None, description="The journey it belongs to, in Temporal.")
    journey: str | None = None
    status: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


def _text(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return mask_in_text(text)[:limit]


def _message_title(row: Message) -> str:
    if row.status == "blocked":
        return f"{row.template} blocked: {row.reason or 'no reason'}"
    if row.status == "pending" and row.defer_until is not None:
        return f"{row.template} deferred: {row.reason or 'until its window opens'}"
    return f"{row.template} {row.status}"


class Timeline:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, limit: int = 200) -> None:
        self._reads = read_sessions(sessions)
        self._limit = limit

    async def of(self, customer_id: str) -> list[TimelineEntry]:
        """Everything recorded about ``customer_id``, oldest first."""
        n = self._limit
        entries: list[TimelineEntry] = []
        async with self._reads() as session:
            customer = await session.get(Customer, customer_id)
            events = (
                await session.exec(
                    select(EventRecord)
                    .where(EventRecord.customer_id == customer_id)
                    .order_by(col(EventRecord.occurred_at).desc())
                    .limit(n)
                )
            ).all()
            journeys = (
                await session.exec(
                    select(JourneyEntry)
                    .where(JourneyEntry.customer_id == customer_id)
                    .order_by(col(JourneyEntry.entered_at).desc())
                    .limit(n)
                )
            ).all()
            messages = (
                await session.exec(
                    select(Message)
                    .where(Message.customer_id == customer_id)
                    .order_by(col(Message.created_at).desc())
                    .limit(n)
                )
            ).all()
            if customer is None and not events and not messages:
                raise UnknownCustomer(f"nothing is recorded about customer {customer_id!r}")
            by_id = {m.id: m for m in messages}
            ids = list(by_id)
            receipts = (
                await session.exec(
                    select(MessageStatusChange)
                    .where(col(MessageStatusChange.message_id).in_(ids))
                    .order_by(col(MessageStatusChange.at).desc())
                    .limit(n)
                )
            ).all()
            clicks = (
                await session.exec(
                    select(Click)
                    .where(col(Click.message_id).in_(ids))
                    .order_by(col(Click.at).desc())
                    .limit(n)
                )
            ).all()
            replies: list[InboundMessage] = []
            if customer is not None and customer.phone:
                replies = list(
                    (
                        await session.exec(
                            select(InboundMessage)
                            .where(InboundMessage.from_number == customer.phone)
                            .order_by(col(InboundMessage.received_at).desc())
                            .limit(n)
                        )
                    ).all()
                )
            consents = (
                await session.exec(
                    select(ConsentEvent)
                    .where(ConsentEvent.customer_id == customer_id)
                    .order_by(col(ConsentEvent.at).desc())
                    .limit(n)
                )
            ).all()
            conversions = (
                await session.exec(
                    select(Conversion)
                    .where(Conversion.customer_id == customer_id)
                    .order_by(col(Conversion.at).desc())
                    .limit(n)
                )
            ).all()
        for event in events:
            entries.append(
                TimelineEntry(
                    at=event.occurred_at,
                    kind=Kind.EVENT,
                    title=event.name,
                    detail={"event_id": event.event_id, "properties": _text(event.properties)},
                )
            )
        for entry in journeys:
            entries.append(
                TimelineEntry(
                    at=entry.entered_at,
                    kind=Kind.JOURNEY,
                    title=f"entered {entry.journey}",
                    workflow_id=entry.workflow_id,
                    journey=entry.journey,
                    status="closed" if entry.closed else "open",
                )
            )
        for message in messages:
            entries.append(
                TimelineEntry(
                    at=message.created_at,
                    kind=Kind.MESSAGE,
                    title=_message_title(message),
                    message_id=message.id,
                    workflow_id=message.workflow_id,
                    journey=message.journey,
                    status=message.status,
                    detail={
                        "step": message.step,
                        "variant": message.variant,
                        "route": message.route,
                        "signature": message.signature,
                        "reason": message.reason,
                    },
                )
            )
        for receipt in receipts:
            message = by_id[receipt.message_id or ""]
            entries.append(
                TimelineEntry(
                    at=receipt.at,
                    kind=Kind.RECEIPT,
                    title=f"{receipt.provider} receipt: {receipt.status}"
                    + ("" if receipt.applied else " (no change)"),
                    message_id=message.id,
                    workflow_id=message.workflow_id,
                    journey=message.journey,
                    status=receipt.status,
                    detail={"error_code": receipt.error_code, "applied": receipt.applied},
                )
            )
        for click in clicks:
            message = by_id[click.message_id]
            entries.append(
                TimelineEntry(
                    at=click.at,
                    kind=Kind.CLICK,
                    title="clicked" if click.bot is None else f"link fetched by a bot ({click.bot})",
                    message_id=message.id,
                    workflow_id=message.workflow_id,
                    journey=message.journey,
                    detail={"code": click.code, "bot": click.bot},
                )
            )
        for reply in replies:
            entries.append(
                TimelineEntry(
                    at=reply.received_at,
                    kind=Kind.REPLY,
                    title=f"replied {reply.keyword.upper()}" if reply.keyword else "replied",
                    detail={"provider": reply.provider, "text": _text(reply.text)},
                )
            )
        for consent in consents:
            entries.append(
                TimelineEntry(
                    at=consent.at,
                    kind=Kind.CONSENT,
                    title=f"{consent.purpose} consent {consent.action}",
                    detail={"source": consent.source, "actor": consent.actor},
                )
            )
        for conversion in conversions:
            entries.append(
                TimelineEntry(
                    at=conversion.at,
                    kind=Kind.CONVERSION,
                    title=f"{conversion.name}, credited to {conversion.template}",
                    message_id=conversion.message_id,
                    journey=conversion.journey,
                    detail={
                        "variant": conversion.variant,
                        "revenue": conversion.revenue,
                        "currency": conversion.currency,
                    },
                )
            )
        entries.sort(key=lambda e: (e.at, list(Kind).index(e.kind)))
        return entries
