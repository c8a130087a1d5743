"""Forgetting a customer (GDPR art. 17, PIPL art. 47): their personal data goes, the counts stay.

Removed: the profile's name, phone and attributes; the number, body and parameters of their
messages; the raw provider payloads of those messages' receipts; the number, text and raw payload
of their replies; their events' properties; their clicks' user agents and their links' targets;
the number and text in the events the stream keeps for its sinks (``include_pii``).
Kept: the rows themselves (a message sent is still counted, with its template, status, cost and
time), the hashed suppression (a STOP must outlive the customer), the consent trail's actions.
Their running journeys end first, so none sends after the erasure; each erasure is recorded.
Temporal keeps a finished journey's history for the namespace's retention, sealed by the codec.
"""

from __future__ import annotations

import contextlib
import hashlib

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from nudge.contracts import SA_CUSTOMER
from nudge.logging import get_logger
from nudge.phone import phone_hash
from nudge.sinks import PII_FIELDS, EventKind
from nudge.store import (
    Click,
    Complaint,
    Consent,
    ConsentEvent,
    Customer,
    Erasure,
    EventRecord,
    InboundMessage,
    JourneyEntry,
    Link,
    Message,
    MessageStatusChange,
    StreamEvent,
    utcnow,
)
from starter.api.services.customers import UnknownCustomer

log = get_logger(__name__)


async def forget_customer(
    sessions: async_sessionmaker[AsyncSession], client: Client, customer_id: str, *, by: str
) -> Erasure:
    """Remove the customer's personal data, end their journeys, and record the erasure.

    The profile goes first: from then on every send of theirs is blocked (no phone) and a late
    receipt stores nothing of them; then their journeys end; then their rows are swept, the
    messages last, so that a send that was already on its way is swept too.

    Raises:
        UnknownCustomer: no customer has this id.
    """
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
        await session.commit()
    ended = await _end_journeys(sessions, client, customer_id)
    async with sessions() as session:
        counts = await _sweep(session, customer_id, phone)
        record = Erasure(
            customer_id=customer_id,
            by=by[:300],
            journeys_ended=ended,
            messages=counts["messages"],
            replies=counts["replies"],
            events=counts["events"],
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


async def _end_journeys(sessions: async_sessionmaker[AsyncSession], client: Client, customer_id: str) -> int:
    """Terminate every journey the store knows running for the customer, and any the server still
    runs for them (found by the NudgeCustomerId search attribute: a start whose entry was never
    written); mark their entries closed."""
    async with sessions() as session:
        entries = (
            await session.exec(
                select(JourneyEntry).where(
                    JourneyEntry.customer_id == customer_id, col(JourneyEntry.closed).is_(False)
                )
            )
        ).all()
    running = {entry.workflow_id for entry in entries}
    query = f"{SA_CUSTOMER.name} = '{_quote(customer_id)}' AND ExecutionStatus = 'Running'"
    with contextlib.suppress(RPCError):  # a server without visibility queries: the store's list
        running |= {execution.id async for execution in client.list_workflows(query)}
    ended = 0
    for workflow_id in sorted(running):
        try:
            await client.get_workflow_handle(workflow_id).terminate("the customer was erased")
            ended += 1
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # it had ended already
                raise
    async with sessions() as session:
        await session.exec(  # type: ignore[call-overload]
            update(JourneyEntry).where(col(JourneyEntry.customer_id) == customer_id).values(closed=True)
        )
        await session.commit()
    return ended


REPLY_KINDS = [EventKind.REPLIED.value, EventKind.OPTED_OUT.value]
"""The events whose personal field is the number they came from (``from``)."""


def _names(text: str, phone: str) -> bool:
    """Whether ``text`` holds the number, in E.164 or national form (the last 8 digits on)."""
    return phone in text or phone[-8:] in text


def _digest(value: str) -> str:
    return "erased:" + hashlib.sha256(value.encode()).hexdigest()[:40]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


async def _sweep(session: AsyncSession, customer_id: str, phone: str | None) -> dict[str, int]:
    """Clear what the customer's rows say of them (not committed); how many of each were swept."""
    ids = select(Message.id).where(Message.customer_id == customer_id)
    provider_ids = select(Message.provider_message_id).where(
        Message.customer_id == customer_id, col(Message.provider_message_id).is_not(None)
    )
    await session.exec(  # type: ignore[call-overload]
        update(MessageStatusChange)
        .where(
            col(MessageStatusChange.message_id).in_(ids)
            | col(MessageStatusChange.provider_message_id).in_(provider_ids)
        )
        .values(raw={})
    )
    await session.exec(update(Link).where(col(Link.message_id).in_(ids)).values(target_url=""))  # type: ignore[call-overload]
    await session.exec(
        update(Click).where(col(Click.message_id).in_(ids)).values(user_agent=None, ip_hash=None)
    )  # type: ignore[call-overload]
    replies = 0
    if phone:
        # A provider without reply ids (Tencent) is deduplicated by number, time and text: the
        # reference, and the complaint that names the reply by it, keep only a digest of it.
        inbound = (
            await session.exec(select(InboundMessage).where(InboundMessage.from_number == phone))
        ).all()
        for reply in inbound:
            reply_id = f"{reply.provider}:{reply.provider_ref}"
            await session.exec(  # type: ignore[call-overload]
                update(Complaint)
                .where(col(Complaint.kind) == "opt_out", col(Complaint.code) == reply_id)
                .values(code=_digest(reply_id))
            )
            if (
                phone in reply.provider_ref
                or phone.lstrip("+") in reply.provider_ref
                or phone[3:] in reply.provider_ref
            ):
                reply.provider_ref = _digest(reply.provider_ref)
            reply.from_number, reply.text, reply.raw = "", "", {}
            session.add(reply)
        replies = len(inbound)
    # A reply's wording is kept as its consent change's text: it goes too. The brand's own wording
    # of a consent given (what the customer was shown) and every action stay.
    from_reply = col(Consent.source).startswith("reply:")
    await session.exec(  # type: ignore[call-overload]
        update(Consent).where(col(Consent.customer_id) == customer_id, from_reply).values(text="")
    )
    await session.exec(  # type: ignore[call-overload]
        update(ConsentEvent)
        .where(col(ConsentEvent.customer_id) == customer_id, col(ConsentEvent.source).startswith("reply:"))
        .values(text="")
    )
    events = await session.exec(  # type: ignore[call-overload]
        update(EventRecord).where(col(EventRecord.customer_id) == customer_id).values(properties={})
    )
    if phone:  # the opted_out event of a reply is named after it (and so after the number)
        named = (
            await session.exec(select(EventRecord.event_id).where(EventRecord.customer_id == customer_id))
        ).all()
        for event_id in named:
            if _names(event_id, phone):
                await session.exec(  # type: ignore[call-overload]
                    update(EventRecord)
                    .where(col(EventRecord.event_id) == event_id)
                    .values(event_id=_digest(event_id))
                )
    # Events not delivered yet still go, without the number and the text they held: the customer's,
    # and those of their number from before it was theirs (a reply from a number nobody had yet).
    theirs = col(StreamEvent.customer_id) == customer_id
    if phone:
        nobodys = col(StreamEvent.customer_id).is_(None)
        unhashed = nobodys & col(StreamEvent.phone_hash).is_(None) & col(StreamEvent.kind).in_(REPLY_KINDS)
        theirs = theirs | (col(StreamEvent.phone_hash) == phone_hash(phone)) | unhashed
    streamed_rows = await session.exec(select(StreamEvent).where(theirs))
    for streamed in streamed_rows.all():
        legacy = streamed.customer_id != customer_id and streamed.phone_hash is None
        if legacy and streamed.body.get("from") != phone:  # from before the hash column: its number?
            continue
        if PII_FIELDS & streamed.body.keys() or streamed.phone_hash is not None:
            streamed.body = {k: v for k, v in streamed.body.items() if k not in PII_FIELDS}
            streamed.phone_hash = None
            session.add(streamed)
    messages = await session.exec(  # type: ignore[call-overload]
        update(Message).where(col(Message.customer_id) == customer_id).values(to=None, body="", params=None)
    )
    return {"messages": messages.rowcount, "replies": replies, "events": events.rowcount}
