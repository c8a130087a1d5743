"""Forgetting a customer (GDPR art. 17, PIPL art. 47): their personal data goes, the counts stay.

Removed: the profile's name, phone and attributes; the number, body and parameters of their
messages; the raw provider payloads of those messages' receipts; the number, text and raw payload
of their replies; their events' properties; their clicks' user agents and their links' targets.
Kept: the rows themselves (a message sent is still counted, with its template, status, cost and
time), the hashed suppression (a STOP must outlive the customer), the consent trail's actions.
Their running journeys end first, so none sends after the erasure; each erasure is recorded.
Temporal keeps a finished journey's history for the namespace's retention, sealed by the codec.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from nudge.logging import get_logger
from nudge.store import (
    Click,
    Customer,
    Erasure,
    EventRecord,
    InboundMessage,
    JourneyEntry,
    Link,
    Message,
    MessageStatusChange,
    utcnow,
)
from starter.api.services.customers import UnknownCustomer

log = get_logger(__name__)


async def forget_customer(
    sessions: async_sessionmaker[AsyncSession], client: Client, customer_id: str, *, by: str
) -> Erasure:
    """End the customer's journeys, remove their personal data, and record the erasure.

    Raises:
        UnknownCustomer: no customer has this id.
    """
    async with sessions() as session:
        if await session.get(Customer, customer_id) is None:
            raise UnknownCustomer(customer_id)
        running = (
            await session.exec(
                select(JourneyEntry).where(
                    JourneyEntry.customer_id == customer_id, col(JourneyEntry.closed).is_(False)
                )
            )
        ).all()
    ended = 0
    for entry in running:
        try:
            await client.get_workflow_handle(entry.workflow_id).terminate("the customer was erased")
            ended += 1
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # it had ended already
                raise
    async with sessions() as session:
        customer = await session.get(Customer, customer_id, with_for_update=True)
        if customer is None:
            raise UnknownCustomer(customer_id)
        phone = customer.phone
        customer.name = None
        customer.phone = None
        customer.attributes = {}
        customer.erased_at = utcnow()
        session.add(customer)
        ids = select(Message.id).where(Message.customer_id == customer_id)
        messages = await session.exec(  # type: ignore[call-overload]
            update(Message)
            .where(col(Message.customer_id) == customer_id)
            .values(to=None, body="", params=None)
        )
        await session.exec(  # type: ignore[call-overload]
            update(MessageStatusChange).where(col(MessageStatusChange.message_id).in_(ids)).values(raw={})
        )
        await session.exec(update(Link).where(col(Link.message_id).in_(ids)).values(target_url=""))  # type: ignore[call-overload]
        await session.exec(update(Click).where(col(Click.message_id).in_(ids)).values(user_agent=None))  # type: ignore[call-overload]
        replies = 0
        if phone:
            replies = (
                await session.exec(  # type: ignore[call-overload]
                    update(InboundMessage)
                    .where(col(InboundMessage.from_number) == phone)
                    .values(from_number="", text="", raw={})
                )
            ).rowcount
        events = await session.exec(  # type: ignore[call-overload]
            update(EventRecord).where(col(EventRecord.customer_id) == customer_id).values(properties={})
        )
        await session.exec(  # type: ignore[call-overload]
            update(JourneyEntry).where(col(JourneyEntry.customer_id) == customer_id).values(closed=True)
        )
        record = Erasure(
            customer_id=customer_id,
            by=by,
            messages=messages.rowcount,
            replies=replies,
            events=events.rowcount,
            journeys_ended=ended,
        )
        session.add(record)
        await session.commit()
        await session.refresh(record)
    log.info(
        "customer_erased",
        customer_id=customer_id,
        by=by,
        messages=record.messages,
        replies=record.replies,
        events=record.events,
        journeys_ended=ended,
    )
    return record
