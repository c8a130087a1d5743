"""The ``Broadcast`` workflow's activities: its pages, its batches, its expiry and its counts.

Built by the worker with the same store, router, registry and pauses as the journeys' send, so
that a broadcast's recipients pass the same gate and its sends the same routes, rate limits and
breakers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import and_, func, or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audiences import Audiences, UnknownAudience
from activities.compliance.complaints import ComplaintRecorder
from activities.compliance.pauses import PauseCache
from activities.compliance.registry import Registry
from activities.routing import Router
from activities.send.compose import Composer
from activities.send.gate import Gate
from activities.send.ledger import Ledger
from activities.send.outcome import DEFERRED
from activities.send.reconcile import Reconciler
from activities.send.refusal import Refusals
from activities.send.walk import RouteWalk
from nudge.broadcasts import (
    BatchReport,
    BatchRequest,
    BroadcastCounts,
    CountRequest,
    ExpireReport,
    ExpireRequest,
    Outcome,
    Page,
    PageRequest,
)
from nudge.caps import CAPPED, DEFAULT_CAPS
from nudge.contracts import error_type
from nudge.logging import get_logger
from nudge.models import FrequencyCap, MessageStatus
from nudge.phone import parsing_once
from nudge.quiet_hours import DEFAULT_WINDOWS, Window
from nudge.sinks import EventKind, StreamSink
from nudge.store import Message, publish, read_sessions, utcnow

from .batch import BatchSender
from .dispatch import BatchDispatcher
from .gate import EXPIRED
from .rows import TABLE, BatchRows

log = get_logger(__name__)
EXPIRE_CHUNK = 1000
"""Expired rows read back at a time to publish them."""


class BroadcastActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        router: Router,
        *,
        registry: Registry,
        link_base_url: str,
        status_callbacks: Mapping[str, str] | None = None,
        quiet_hours: Mapping[str, Window] = DEFAULT_WINDOWS,
        caps: Sequence[FrequencyCap] = DEFAULT_CAPS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        complaints: ComplaintRecorder | None = None,
        pauses: PauseCache | None = None,
        sinks: Sequence[StreamSink] = (),
        audiences: Audiences | None = None,
    ) -> None:
        pauses = pauses or PauseCache(sessions)
        self._sessions = sessions
        self._sinks = sinks
        self._reads = read_sessions(sessions)
        self._clock = clock
        self._audiences = audiences or Audiences(sessions)
        ledger = Ledger(sessions, sinks=sinks)
        composer = Composer(
            registry=registry, router=router, link_base_url=link_base_url, status_callbacks=status_callbacks
        )
        rows = BatchRows(sessions, sinks=sinks)
        refusals = Refusals(sessions, complaints=complaints or ComplaintRecorder(sessions), sinks=sinks)
        self._sender = BatchSender(
            rows=rows,
            composer=composer,
            gate=Gate(ledger=ledger, pauses=pauses, quiet_hours=quiet_hours, caps=caps, clock=clock),
            reconciler=Reconciler(router=router, composer=composer, ledger=ledger, clock=clock),
            dispatcher=BatchDispatcher(
                walk=RouteWalk(router=router, registry=registry, pauses=pauses),
                composer=composer,
                rows=rows,
                refusals=refusals,
                clock=clock,
            ),
            caps=caps,
            clock=clock,
        )

    @activity.defn(name="broadcast_page")
    async def broadcast_page(self, request: PageRequest) -> Page:
        if request.pass_no == 0:
            with audience_must_exist():
                bounds, done = await self._audiences.bounds(
                    request.audience,
                    after=request.after,
                    batches=request.batches,
                    batch_size=request.batch_size,
                )
            return Page(bounds=bounds, done=done)
        now = request.now or self._clock()
        async with self._sessions() as session:
            # Stamp the rows now due with this pass (again, on a retry: the same rows and any newly due).
            await session.exec(
                update(TABLE)
                .where(
                    TABLE.c.broadcast_id == request.broadcast_id,
                    TABLE.c.status == MessageStatus.PENDING.value,
                    TABLE.c.defer_until <= now,
                    or_(TABLE.c.broadcast_pass.is_(None), TABLE.c.broadcast_pass < request.pass_no),
                )
                .values(broadcast_pass=request.pass_no)
            )
            await session.commit()
        limit = request.batches * request.batch_size
        async with self._reads() as session:
            query = select(TABLE.c.customer_id).where(
                TABLE.c.broadcast_id == request.broadcast_id, TABLE.c.broadcast_pass == request.pass_no
            )
            if request.after is not None:
                query = query.where(TABLE.c.customer_id > request.after)
            ids = list((await session.exec(query.order_by(TABLE.c.customer_id).limit(limit + 1))).all())
            later = await session.exec(
                select(func.min(TABLE.c.defer_until)).where(
                    TABLE.c.broadcast_id == request.broadcast_id,
                    TABLE.c.status == MessageStatus.PENDING.value,
                    TABLE.c.defer_until > now,
                )
            )
            next_due = later.one()
        more = len(ids) > limit
        ids = ids[:limit]
        bounds = [ids[i] for i in range(request.batch_size - 1, len(ids), request.batch_size)]
        if ids and (not bounds or bounds[-1] != ids[-1]):
            bounds.append(ids[-1])
        return Page(bounds=bounds, done=not more, next_due=next_due)

    @activity.defn(name="send_broadcast_batch")
    async def send_broadcast_batch(self, request: BatchRequest) -> BatchReport:
        if request.pass_no == 0:
            with audience_must_exist():
                members = await self._audiences.members(
                    request.spec.audience, after=request.after, upto=request.upto
                )
        else:
            members = await self._stamped(request)
        if not members:
            return BatchReport()
        with parsing_once():  # each number is routed, timed and dispatched: parsed once
            return await self._sender.send(request, members)

    async def _stamped(self, request: BatchRequest) -> list[str]:
        """The customers of a later pass's batch: the rows stamped with it, in its range."""
        async with self._reads() as session:
            query = select(TABLE.c.customer_id).where(
                TABLE.c.broadcast_id == request.spec.broadcast_id,
                TABLE.c.broadcast_pass == request.pass_no,
                TABLE.c.customer_id <= request.upto,
            )
            if request.after is not None:
                query = query.where(TABLE.c.customer_id > request.after)
            return list((await session.exec(query.order_by(TABLE.c.customer_id))).all())

    @activity.defn(name="expire_broadcast")
    async def expire_broadcast(self, request: ExpireRequest) -> ExpireReport:
        waiting = and_(
            TABLE.c.broadcast_id == request.broadcast_id,
            TABLE.c.status == MessageStatus.PENDING.value,
            # Only rows that wait: every batch has finished, so no other row is pending, and one
            # that a lost answer left pending may have been sent.
            TABLE.c.defer_until.is_not(None),
        )
        capped = TABLE.c.reason.like(f"{DEFERRED}{CAPPED}%")
        reason = f"{EXPIRED}{request.reason}"
        counts: dict[Outcome, int] = {}
        expired: list[str] = []
        # One transaction, so that a retry after a failure finds every row still waiting and counts
        # them all again; each update returns the rows it changed (on PostgreSQL a row that a
        # concurrent writer took meanwhile is neither counted nor published).
        async with self._sessions() as session:
            for outcome, which in ((Outcome.CAPPED, and_(waiting, capped)), (Outcome.DEFERRED, waiting)):
                changed = await session.exec(
                    update(TABLE)
                    .where(which)
                    .values(status=MessageStatus.BLOCKED.value, reason=reason, updated_at=utcnow())
                    .returning(TABLE.c.id)
                )
                ids = list(changed.scalars().all())
                if ids:
                    counts[outcome] = len(ids)
                    expired += ids
            if self._sinks:
                for start in range(0, len(expired), EXPIRE_CHUNK):
                    chunk = expired[start : start + EXPIRE_CHUNK]
                    rows = await session.exec(select(Message).where(col(Message.id).in_(chunk)))
                    for message in rows.all():
                        publish(session, self._sinks, EventKind.BLOCKED, message=message, reason=reason)
                    await session.flush()  # the chunk's events written, its rows no longer held
                    session.expunge_all()
            # An earlier attempt that committed and whose answer was lost (its worker killed)
            # left nothing waiting: the rows it expired still count, once. Its split is not kept
            # (the workflow adds the total); they are counted as deferred.
            before = await session.exec(
                select(func.count()).where(
                    TABLE.c.broadcast_id == request.broadcast_id,
                    TABLE.c.status == MessageStatus.BLOCKED.value,
                    TABLE.c.reason == reason,
                )
            )
            earlier = int(before.one()) - len(expired)
            await session.commit()
        if earlier:
            counts[Outcome.DEFERRED] = counts.get(Outcome.DEFERRED, 0) + earlier
        log.info(
            "broadcast_expired",
            broadcast_id=request.broadcast_id,
            reason=request.reason,
            by_an_earlier_attempt=earlier,
            **{k.value: v for k, v in counts.items()},
        )
        return ExpireReport(counts=counts)

    @activity.defn(name="broadcast_counts")
    async def broadcast_counts(self, request: CountRequest) -> BroadcastCounts:
        with audience_must_exist():
            audience = await self._audiences.count(request.audience)
        async with self._reads() as session:
            delivered = await session.exec(
                select(func.count()).where(
                    col(Message.broadcast_id) == request.broadcast_id,
                    col(Message.status) == MessageStatus.DELIVERED.value,
                )
            )
        return BroadcastCounts(audience=audience, delivered=int(delivered.one()))


@contextmanager
def audience_must_exist() -> Iterator[None]:
    """An unknown audience (never saved, or deleted since) fails the activity for good: no retry
    brings it back, so the workflow fails at once with ``UnknownAudience``."""
    try:
        yield
    except UnknownAudience as exc:
        raise ApplicationError(str(exc), type=error_type(UnknownAudience), non_retryable=True) from exc
