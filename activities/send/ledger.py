"""The message ledger: every read and write of a message row the send makes, and nothing else.

The gate and dispatch decide; the ledger records. Each state change is its own short transaction,
so that a send never holds the database's write lock (SQLite has one) while it calls a provider.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.early_receipts import attach_unmatched, has_unmatched
from activities.providers.base import Submission
from activities.routing import Route
from nudge.caps import Reservation, full_cap
from nudge.logging import get_logger
from nudge.models import FrequencyCap, MessageStatus, SendRequest
from nudge.phone import phone_hash
from nudge.sinks import EventKind, StreamSink
from nudge.store import (
    Consent,
    Customer,
    Link,
    Message,
    MessageStatusChange,
    Suppression,
    consent_key,
    publish,
    read_sessions,
    utcnow,
)

from .compose import price
from .outcome import DEFERRED

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Standing:
    """The recipient as the gate sees them: suppression, consent and profile."""

    suppression: Suppression | None
    consent: Consent | None
    customer: Customer | None


NOBODY = Standing(suppression=None, consent=None, customer=None)


class Ledger:
    """Message rows on one store; each decision it records is published to the stream's ``sinks``
    in the same transaction (sent, blocked)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, sinks: Sequence[StreamSink] = ()
    ) -> None:
        self._sessions = sessions
        self._sinks = sinks
        self._reads = read_sessions(sessions)
        self._postgres = sessions.kw["bind"].dialect.name == "postgresql"

    # ----- reads ---------------------------------------------------------------------------

    async def lookup(self, request: SendRequest) -> tuple[Message | None, Standing]:
        """The message an earlier attempt stored (if any), and what the gate needs to know about
        the recipient, in one lock-free read."""
        async with self._reads() as session:
            found = await session.exec(
                select(Message).where(Message.idempotency_key == request.idempotency_key)
            )
            message = found.first()
            if message is not None and message.status != MessageStatus.PENDING:
                return message, NOBODY
            customer = await session.get(Customer, request.customer_id)
            to = message.to if message is not None else (customer.phone if customer else None)
            suppression = await session.get(Suppression, phone_hash(to)) if to else None
            consent = await session.get(Consent, consent_key(request.customer_id))
        return message, Standing(suppression=suppression, consent=consent, customer=customer)

    async def claimed_by_another(self, message: Message, submission: Submission) -> bool:
        """A lookup that matched by content (Twilio) must not claim another message's send."""
        if not submission.provider_message_id:
            return False
        async with self._reads() as session:
            rows = await session.exec(
                select(Message.id).where(
                    Message.provider_message_id == submission.provider_message_id, Message.id != message.id
                )
            )
            return rows.first() is not None

    # ----- writes --------------------------------------------------------------------------

    async def insert(self, message: Message, links: list[Link]) -> tuple[Message, bool]:
        """Store a new message and its links; ``(row, True)``, or ``(the other row, False)`` when
        a concurrent attempt with the same idempotency key stored it first. One blocked from the
        start (no phone, no route) is published ``blocked`` with it."""
        async with self._sessions() as session:
            session.add(message)
            session.add_all(links)
            if message.status == MessageStatus.BLOCKED:
                publish(session, self._sinks, EventKind.BLOCKED, message=message)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                async with self._reads() as read:
                    found = await read.exec(
                        select(Message).where(Message.idempotency_key == message.idempotency_key)
                    )
                    existing = found.first()
                if existing is None:
                    raise
                return existing, False
        return message, True

    async def reserve(self, message: Message, caps: list[FrequencyCap], *, now: datetime) -> Message | None:
        """Take a place under every cap that applies (None), or block the message with the full
        cap's reason and when it frees (the blocked row).

        Counting and reserving happen in one transaction that holds the customer's row lock on
        PostgreSQL (``SELECT ... FOR UPDATE``) and the write lock on SQLite (``BEGIN IMMEDIATE``),
        so racing sends for one customer queue here and each counts the others' reservations.
        """
        longest = max(cap.window for cap in caps)
        async with self._sessions() as session:
            if self._postgres:
                lock = select(Customer.id).where(Customer.id == message.customer_id).with_for_update()
                await session.exec(lock)
            rows = await session.exec(
                select(Message.cap_reserved_at, Message.journey).where(
                    Message.customer_id == message.customer_id,
                    Message.category == message.category,
                    col(Message.cap_reserved_at) > now - longest,
                    col(Message.status).not_in([MessageStatus.BLOCKED.value, MessageStatus.FAILED.value]),
                    Message.id != message.id,
                )
            )
            held = [Reservation(at, journey) for at, journey in rows.all() if at is not None]
            full = full_cap(caps, held, now=now, journey=message.journey)
            values: dict[str, Any] = {"updated_at": utcnow()}
            if full is None:
                values["cap_reserved_at"] = now
            else:
                values.update(
                    status=MessageStatus.BLOCKED.value, reason=full.reason, defer_until=full.frees_at
                )
            moved = await session.exec(
                update(Message)
                .where(col(Message.id) == message.id, col(Message.status) == MessageStatus.PENDING.value)
                .values(**values)
            )
            if full is not None and moved.rowcount == 1:
                publish(
                    session,
                    self._sinks,
                    EventKind.BLOCKED,
                    message=message,
                    status=MessageStatus.BLOCKED.value,
                    reason=full.reason,
                )
            await session.commit()
        if full is None:
            return None
        log.info(
            "message_capped",
            message_id=message.id,
            cap=full.cap.label,
            counted=len(held),
            frees_at=full.frees_at.isoformat() if full.frees_at else None,
        )
        async with self._reads() as session:
            return await session.get(Message, message.id)

    async def claim_route(self, message: Message, route: Route, signature: str) -> Message:
        """Put a pending message on ``route`` and clear an earlier attempt's reason, before the call:
        from now on a retry that finds it pending asks this route, about sends since now."""
        async with self._sessions() as session:
            row = await session.get(Message, message.id)
            assert row is not None
            previous = row.route
            price(row, route, signature)
            row.reason = row.waiting = None
            row.updated_at = utcnow()
            session.add(row)
            await session.commit()
        if previous and previous != route.name:
            log.warning("message_rerouted", message_id=message.id, route=route.name, previous=previous)
        return row

    async def mark(self, message_id: str, reason: str) -> None:
        """Note on a still-pending message why its last attempt did not send it (``not_sent:``)."""
        async with self._sessions() as session:
            row = await session.get(Message, message_id)
            if row is not None and row.status == MessageStatus.PENDING:
                row.reason = reason
                row.waiting = None
                row.updated_at = utcnow()
                session.add(row)
                await session.commit()

    async def note_waiting(self, message_id: str, note: str) -> None:
        """Say on a pending message what its send waits for; the attempt's time (``updated_at``,
        which the lookup grace counts from) stays as it is."""
        async with self._sessions() as session:
            await session.exec(
                update(Message)
                .where(col(Message.id) == message_id, col(Message.status) == MessageStatus.PENDING)
                .values(waiting=note)
            )
            await session.commit()

    async def block(self, message_id: str, reason: str) -> Message:
        async with self._sessions() as session:
            row = await session.get(Message, message_id)
            assert row is not None
            already = row.status == MessageStatus.BLOCKED
            row.status = MessageStatus.BLOCKED
            row.reason = reason
            row.updated_at = utcnow()
            session.add(row)
            if not already:
                publish(session, self._sinks, EventKind.BLOCKED, message=row)
            await session.commit()
        log.warning("message_blocked", message_id=message_id, reason=reason)
        return row

    async def defer(self, message_id: str, code: str, retry_at: datetime) -> Message:
        async with self._sessions() as session:
            row = await session.get(Message, message_id)
            assert row is not None
            row.reason = f"{DEFERRED}{code}"
            row.waiting = None
            row.defer_until = retry_at
            # It goes out later, not now: it takes its place under the caps again when it does.
            row.cap_reserved_at = None
            row.updated_at = utcnow()
            session.add(row)
            await session.commit()
        log.info("message_deferred", message_id=message_id, code=code, until=retry_at.isoformat())
        return row

    async def record_submission(self, message_id: str, route: Route, submission: Submission) -> Message:
        """Mark the message submitted, and apply any receipt that arrived before this answer.

        Write-only statements (no read first): on SQLite a transaction holds the database's one
        write lock from its first statement, and a send must not keep the transactional lane
        waiting behind reads.
        """
        values: dict[str, Any] = {
            "provider": submission.provider,
            "route": route.name,
            "reason": None,
            "waiting": None,
            "defer_until": None,
            "updated_at": utcnow(),
            # A receipt matched by our own id (Aliyun's OutId) may already have moved it on.
            "status": case(
                (col(Message.status) == MessageStatus.PENDING.value, MessageStatus.SUBMITTED.value),
                else_=col(Message.status),
            ),
        }
        if submission.provider_message_id:
            values["provider_message_id"] = submission.provider_message_id
        if submission.segments:
            values["segments"] = submission.segments
            values["cost"] = round(submission.segments * route.config.cost_per_segment, 6)
        async with self._sessions() as session:
            recorded = update(Message).where(col(Message.id) == message_id).values(**values)
            if self._sinks:
                # A first submission is the one that finds no provider yet; the row it wrote comes
                # back with the write (RETURNING), for the event, and nothing is read before it.
                first = await session.exec(  # type: ignore[call-overload]
                    recorded.where(col(Message.provider).is_(None))
                    .returning(Message)
                    .execution_options(synchronize_session=False)
                )
                after = first.scalars().first()
                if after is None:
                    await session.exec(recorded)
                else:
                    publish(session, self._sinks, EventKind.SENT, message=after)
            else:
                await session.exec(recorded)
            session.add(
                MessageStatusChange(
                    message_id=message_id,
                    provider=submission.provider,
                    provider_message_id=submission.provider_message_id,
                    status=MessageStatus.SUBMITTED,
                    applied=True,
                )
            )
            await session.commit()
        async with self._reads() as session:
            message = await session.get(Message, message_id)
            # Receipts that came before the provider's id was stored are waiting unmatched.
            early = bool(submission.provider_message_id) and await has_unmatched(
                session, submission.provider, submission.provider_message_id or ""
            )
        if early:
            async with self._sessions() as session:
                # Locked: a receipt batch that moves it meanwhile must not be overwritten.
                message = await session.get(Message, message_id, with_for_update=True)
                assert message is not None
                await attach_unmatched(session, message, sinks=self._sinks)
                await session.commit()
        assert message is not None
        return message
