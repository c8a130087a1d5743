"""Conversions: a journey's goal event credited to the message that preceded it.

The last message the customer received from a journey with that goal, within the attribution
window (``NUDGE_ATTRIBUTION_WINDOW``, 48 h) before the event, gets the credit: its journey, step,
template, variant, route and signature, and the event's ``amount`` as revenue. The gateway writes
the conversion in the transaction that stores the event, so a redelivered event counts once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.models import Event, MessageStatus
from nudge.sinks import EventKind, StreamSink
from nudge.store import Conversion, Message, publish, utcnow
from workflows.journey import Journey

RECEIVED = [s.value for s in (MessageStatus.SUBMITTED, MessageStatus.SENT, MessageStatus.DELIVERED)]
"""Statuses of a message the customer got (or may yet get): what a conversion can be credited to."""


class Attribution:
    def __init__(self, journeys: Iterable[type[Journey]], *, window: timedelta) -> None:
        self._window = window
        self._goals: dict[str, list[str]] = {}
        """Goal event -> the journeys it converts."""
        for journey in journeys:
            if journey.goal:
                self._goals.setdefault(journey.goal, []).append(journey.name)

    async def conversion(self, session: AsyncSession, event: Event) -> Conversion | None:
        """A goal event, credited to the last message the customer received from a journey with
        that goal within the attribution window before it; None for any other event."""
        journeys = self._goals.get(event.name)
        if not journeys:
            return None
        at = event.occurred_at or utcnow()
        message = (
            await session.exec(
                select(Message)
                .where(
                    Message.customer_id == event.customer_id,
                    col(Message.journey).in_(journeys),
                    col(Message.status).in_(RECEIVED),
                    col(Message.created_at) >= at - self._window,
                    col(Message.created_at) <= at,
                )
                .order_by(col(Message.created_at).desc())
                .limit(1)
            )
        ).first()
        if message is None:
            return None
        amount = event.properties.get("amount")
        revenue = None
        # JSON as FastAPI reads it takes NaN and Infinity: neither is revenue.
        if isinstance(amount, int | float) and not isinstance(amount, bool) and math.isfinite(amount):
            revenue = float(amount)
        currency = event.properties.get("currency")
        return Conversion(
            event_id=event.event_id,
            name=event.name,
            customer_id=event.customer_id,
            message_id=message.id,
            journey=message.journey,
            step=message.step,
            template=message.template,
            variant=message.variant,
            route=message.route,
            signature=message.signature,
            revenue=revenue,
            currency=currency if isinstance(currency, str) else None,
            at=at,
        )


def publish_conversion(session: AsyncSession, sinks: Sequence[StreamSink], conversion: Conversion) -> None:
    """Publish ``conversion`` in the transaction that stores it (``currency`` is the revenue's)."""
    publish(
        session,
        sinks,
        EventKind.CONVERTED,
        at=conversion.at,
        message_id=conversion.message_id,
        customer_id=conversion.customer_id,
        journey=conversion.journey,
        step=conversion.step,
        template=conversion.template,
        variant=conversion.variant,
        route=conversion.route,
        goal_event=conversion.name,
        goal_event_id=conversion.event_id,
        revenue=conversion.revenue,
        currency=conversion.currency,
    )
