"""A broadcast batch's rows on their way through the gate: the new rows stored in one insert, the
caps taken for the whole batch in one transaction that locks its customers, and the gate's
refusals recorded in one update."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.caps import Reservation, applicable, full_cap
from nudge.models import Category, FrequencyCap, MessageStatus
from nudge.sinks import EventKind
from nudge.store import Customer, Link, Message, publish, utcnow

from .table import LINKS, PENDING, TABLE, Decision, RowStore, column_values, update_each


class GateRows(RowStore):
    """The writes of a batch before any provider is called."""

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
        # Plain inserts of the rows' values, one executemany per table: the ORM's unit of work
        # (a flush, and objects tracked in the session) cost more than the rows' writing.
        await session.exec(insert(TABLE), params=[column_values(TABLE, m) for m, _ in rows])
        links = [column_values(LINKS, link) for _, found in rows for link in found]
        if links:
            await session.exec(insert(LINKS), params=links)
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
                await update_each(
                    session,
                    [{"id": d.message.id, "reason": d.reason} for d in blocked],
                    PENDING,
                    status=MessageStatus.BLOCKED.value,
                    updated_at=now,
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
                await update_each(
                    session,
                    [{"id": d.message.id, "reason": d.reason, "defer_until": d.until} for d in deferred],
                    PENDING,
                    cap_reserved_at=None,
                    waiting=None,
                    updated_at=now,
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
                    .where(TABLE.c.id.in_(room), PENDING)
                    .values(cap_reserved_at=now, updated_at=utcnow())
                )
            await session.commit()
        return full
