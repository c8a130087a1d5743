"""A broadcast batch's message rows, read and written a batch at a time.

The journey's ledger (``activities/send/ledger.py``) writes one row per transaction; a broadcast
sends a hundred recipients per batch, so every step here is one statement (or one executemany)
for the whole batch: the recipients' standing in four reads, the new rows in one insert, the
gate's refusals in one update, the caps in one transaction that locks the batch's customers, the
route claims before the provider call, and the answers after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.providers.base import Submission
from activities.receipts import attach_unmatched
from activities.routing import Route
from activities.send.ledger import Standing
from nudge.caps import Reservation, applicable, full_cap
from nudge.models import Category, FrequencyCap, MessageStatus
from nudge.phone import phone_hash
from nudge.sinks import EventKind, StreamSink
from nudge.store import (
    Consent,
    Customer,
    Link,
    Message,
    MessageStatusChange,
    Suppression,
    publish,
    read_sessions,
    utcnow,
)

TABLE = Message.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the gate made of one pending row: blocked (``until`` None) or deferred until then."""

    message: Message
    reason: str
    until: datetime | None = None


class BatchRows:
    """The rows of a broadcast's batches, on one store."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, sinks: Sequence[StreamSink] = ()
    ) -> None:
        self._sessions = sessions
        self._reads = read_sessions(sessions)
        self._sinks = sinks
        self._postgres = sessions.kw["bind"].dialect.name == "postgresql"

    async def load(self, keys: dict[str, str]) -> tuple[dict[str, Message], dict[str, Standing]]:
        """The rows already stored for ``keys`` (customer id -> idempotency key), and every
        customer's standing (profile, suppression of their number, marketing consent)."""
        ids = list(keys)
        async with self._reads() as session:
            found = await session.exec(
                select(Message).where(col(Message.idempotency_key).in_(list(keys.values())))
            )
            existing = {row.customer_id: row for row in found.all()}
            customers = {
                c.id: c for c in (await session.exec(select(Customer).where(col(Customer.id).in_(ids)))).all()
            }
            numbers = {
                cid: (
                    existing[cid].to
                    if cid in existing
                    else customers[cid].phone
                    if cid in customers
                    else None
                )
                for cid in ids
            }
            hashes = {cid: phone_hash(n) for cid, n in numbers.items() if n}
            suppressed = {
                s.phone_hash: s
                for s in (
                    await session.exec(
                        select(Suppression).where(col(Suppression.phone_hash).in_(list(set(hashes.values()))))
                    )
                ).all()
            }
            consents = {
                c.customer_id: c
                for c in (
                    await session.exec(
                        select(Consent).where(
                            col(Consent.customer_id).in_(ids),
                            col(Consent.channel) == "sms",
                            col(Consent.purpose) == "marketing",
                        )
                    )
                ).all()
            }
        standing = {
            cid: Standing(
                suppression=suppressed.get(hashes[cid]) if cid in hashes else None,
                consent=consents.get(cid),
                customer=customers.get(cid),
            )
            for cid in ids
        }
        return existing, standing

    async def insert(self, rows: list[tuple[Message, list[Link]]]) -> tuple[list[Message], list[str]]:
        """Store new rows and their links in one transaction: ``(stored, lost)``, where ``lost``
        are the customers whose row a concurrent attempt of the same batch stored first (read
        them again). Rows blocked from the start (no phone, no route) are published ``blocked``."""
        if not rows:
            return [], []
        try:
            async with self._sessions() as session:
                await self._add(session, rows)
                await session.commit()
            return [m for m, _ in rows], []
        except IntegrityError:
            pass
        # Another attempt of this batch is running (a timed-out activity still at work): one row
        # at a time, keeping the ones it stored.
        stored, lost = [], []
        for message, links in rows:
            try:
                async with self._sessions() as session:
                    await self._add(session, [(message, links)])
                    await session.commit()
                stored.append(message)
            except IntegrityError:
                lost.append(message.customer_id)
        return stored, lost

    async def _add(self, session: AsyncSession, rows: list[tuple[Message, list[Link]]]) -> None:
        session.add_all([m for m, _ in rows])
        await session.flush()
        session.add_all([link for _, links in rows for link in links])
        for message, _ in rows:
            if message.status == MessageStatus.BLOCKED:
                publish(session, self._sinks, EventKind.BLOCKED, message=message)

    async def decide(self, decisions: Sequence[Decision]) -> None:
        """Record the gate's refusals: blocked, or deferred (pending with ``defer_until``)."""
        if not decisions:
            return
        now = utcnow()
        blocked = [d for d in decisions if d.until is None]
        deferred = [d for d in decisions if d.until is not None]
        async with self._sessions() as session:
            if blocked:
                await session.exec(
                    update(TABLE)
                    .where(TABLE.c.id == bindparam("_id"), TABLE.c.status == MessageStatus.PENDING.value)
                    .values(status=MessageStatus.BLOCKED.value, reason=bindparam("_reason"), updated_at=now),
                    params=[{"_id": d.message.id, "_reason": d.reason} for d in blocked],
                )
                for d in blocked:
                    publish(
                        session,
                        self._sinks,
                        EventKind.BLOCKED,
                        message=d.message,
                        status=MessageStatus.BLOCKED.value,
                        reason=d.reason,
                    )
            if deferred:
                await session.exec(
                    update(TABLE)
                    .where(TABLE.c.id == bindparam("_id"), TABLE.c.status == MessageStatus.PENDING.value)
                    .values(
                        reason=bindparam("_reason"),
                        defer_until=bindparam("_until"),
                        cap_reserved_at=None,
                        waiting=None,
                        updated_at=now,
                    ),
                    params=[{"_id": d.message.id, "_reason": d.reason, "_until": d.until} for d in deferred],
                )
            await session.commit()

    async def reserve(
        self, messages: Sequence[Message], caps: Sequence[FrequencyCap], *, now: datetime
    ) -> dict[str, tuple[str, datetime | None]]:
        """Take a place under the caps for every message (one per customer), in one transaction
        that holds the batch's customers (``FOR UPDATE`` on PostgreSQL, in id order so that two
        batches never deadlock; SQLite's write lock otherwise), as the journey's ledger does for
        one. Returns the customers whose cap is full: their cap's reason and when it frees."""
        if not messages or not caps:
            return {}
        longest = max(cap.window for cap in caps)
        by_customer = {m.customer_id: m for m in messages}
        full: dict[str, tuple[str, datetime | None]] = {}
        async with self._sessions() as session:
            if self._postgres:
                await session.exec(
                    select(Customer.id)
                    .where(col(Customer.id).in_(sorted(by_customer)))
                    .order_by(col(Customer.id))
                    .with_for_update()
                )
            rows = await session.exec(
                select(Message.customer_id, Message.category, Message.cap_reserved_at, Message.journey).where(
                    col(Message.customer_id).in_(list(by_customer)),
                    col(Message.cap_reserved_at) > now - longest,
                    col(Message.status).not_in([MessageStatus.BLOCKED.value, MessageStatus.FAILED.value]),
                    col(Message.id).not_in([m.id for m in messages]),
                )
            )
            held: dict[tuple[str, str], list[Reservation]] = {}
            for customer_id, category, at, journey in rows.all():
                if at is not None:
                    held.setdefault((customer_id, category), []).append(Reservation(at, journey))
            room = []
            for customer_id, message in by_customer.items():
                category_caps = applicable(caps, Category(message.category))
                if not category_caps:
                    continue
                reservations = held.get((customer_id, message.category), [])
                capped = full_cap(category_caps, reservations, now=now, journey=message.journey)
                if capped is None:
                    room.append(message.id)
                else:
                    full[customer_id] = (capped.reason, capped.frees_at)
            if room:
                await session.exec(
                    update(TABLE)
                    .where(TABLE.c.id.in_(room), TABLE.c.status == MessageStatus.PENDING.value)
                    .values(cap_reserved_at=now, updated_at=utcnow())
                )
            await session.commit()
        return full

    async def claim(self, claims: Sequence[tuple[Message, Route, str, str]]) -> None:
        """Put messages on a route before the call (``(message, route, signature, batch_ref)``,
        the message priced for it): a retry that finds one pending asks this route about it."""
        if not claims:
            return
        params = [
            {
                "_id": m.id,
                "_route": route.name,
                "_signature": signature,
                "_segments": m.segments,
                "_cost": m.cost,
                "_currency": m.currency,
                "_ref": ref,
            }
            for m, route, signature, ref in claims
        ]
        async with self._sessions() as session:
            await session.exec(
                update(TABLE)
                .where(TABLE.c.id == bindparam("_id"))
                .values(
                    route=bindparam("_route"),
                    signature=bindparam("_signature"),
                    segments=bindparam("_segments"),
                    cost=bindparam("_cost"),
                    currency=bindparam("_currency"),
                    batch_ref=bindparam("_ref"),
                    reason=None,
                    waiting=None,
                    updated_at=utcnow(),
                ),
                params=params,
            )
            await session.commit()

    async def submitted(self, sent: Sequence[tuple[Message, Route, Submission]]) -> None:
        """Record the providers' acceptances, and apply receipts that came before them."""
        if not sent:
            return
        now = utcnow()
        params: list[dict[str, Any]] = []
        for message, route, submission in sent:
            segments = submission.segments or message.segments
            params.append(
                {
                    "_id": message.id,
                    "_provider": submission.provider,
                    "_route": route.name,
                    "_pmid": submission.provider_message_id,
                    "_segments": segments,
                    "_cost": round(segments * route.config.cost_per_segment, 6),
                }
            )
        async with self._sessions() as session:
            await session.exec(
                update(TABLE)
                .where(TABLE.c.id == bindparam("_id"))
                .values(
                    provider=bindparam("_provider"),
                    route=bindparam("_route"),
                    provider_message_id=bindparam("_pmid"),
                    segments=bindparam("_segments"),
                    cost=bindparam("_cost"),
                    reason=None,
                    waiting=None,
                    defer_until=None,
                    updated_at=now,
                    status=case(
                        (TABLE.c.status == MessageStatus.PENDING.value, MessageStatus.SUBMITTED.value),
                        else_=TABLE.c.status,
                    ),
                ),
                params=params,
            )
            session.add_all(
                [
                    MessageStatusChange(
                        message_id=message.id,
                        provider=submission.provider,
                        provider_message_id=submission.provider_message_id,
                        status=MessageStatus.SUBMITTED,
                        applied=True,
                    )
                    for message, _, submission in sent
                ]
            )
            if self._sinks:
                for message, route, submission in sent:
                    message.provider, message.route = submission.provider, route.name
                    message.provider_message_id = submission.provider_message_id
                    publish(session, self._sinks, EventKind.SENT, message=message, status="submitted")
            await session.commit()
        await self._early_receipts(sent)

    async def _early_receipts(self, sent: Sequence[tuple[Message, Route, Submission]]) -> None:
        """Receipts stored before the answer, matched by provider id. An id that several of
        these messages share (an Aliyun batch's BizId) cannot say which number a stored receipt
        is for: those wait for the receipt sweep, which asks by id and number."""
        ids: dict[tuple[str, str], list[str]] = {}
        for message, _, submission in sent:
            if submission.provider_message_id:
                ids.setdefault((submission.provider, submission.provider_message_id), []).append(message.id)
        unique = {key: found[0] for key, found in ids.items() if len(found) == 1}
        if not unique:
            return
        async with self._reads() as session:
            rows = await session.exec(
                select(MessageStatusChange.provider, MessageStatusChange.provider_message_id).where(
                    col(MessageStatusChange.message_id).is_(None),
                    col(MessageStatusChange.provider_message_id).in_([pmid for _, pmid in unique]),
                )
            )
            early = [unique[key] for key in {(p, i) for p, i in rows.all()} if key in unique]
        for message_id in early:
            async with self._sessions() as session:
                row = await session.get(Message, message_id)
                if row is not None:
                    await attach_unmatched(session, row, sinks=self._sinks)
                    await session.commit()

    async def defer(self, rows: Iterable[tuple[Message, str, datetime]]) -> None:
        """Providers' deferrals: pending, to go again then (and take a place under the caps then)."""
        await self.decide([Decision(m, reason, until) for m, reason, until in rows])

    async def mark(self, messages: Iterable[Message], reason: str) -> None:
        """Note on pending messages that their last attempt did not reach the provider."""
        ids = [m.id for m in messages]
        if not ids:
            return
        async with self._sessions() as session:
            await session.exec(
                update(TABLE)
                .where(TABLE.c.id.in_(ids), TABLE.c.status == MessageStatus.PENDING.value)
                .values(reason=reason, waiting=None, updated_at=utcnow())
            )
            await session.commit()

    async def final(self, keys: Iterable[str]) -> list[Message]:
        """The rows as they stand now, for the batch's report."""
        async with self._reads() as session:
            found = await session.exec(select(Message).where(col(Message.idempotency_key).in_(list(keys))))
            return list(found.all())
