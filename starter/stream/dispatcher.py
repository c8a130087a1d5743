"""The dispatcher: delivers the outbox (``nudge.store.stream``) to each sink, at least once.

One loop per sink, in the gateway. A pass claims up to a batch of the sink's due rows (on
PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so that several gateways share the work; SQLite's one
write lock serializes the claims), leases them for longer than a delivery can take, commits, and
only then calls the sink: no transaction stays open across the network. A batch the sink takes is
marked delivered; one it does not is retried after an exponential backoff with jitter, and the
sink gets nothing more until then. An event is never dropped: it waits for its sink however long
that takes. A gateway that dies mid-delivery leaves its lease to expire, and the batch goes again.

A batch the sink refuses for good (a 4xx about its content, ``sink.refusal``: a 400, a 413) is
split in halves, down to single events, within the pass: the events it takes go, and one it
refuses on its own backs off by itself, so that one bad event never holds the others back. After
``max_refusals`` refusals on its own it is parked (``parked_at``, logged ``stream_event_parked``):
kept, but no longer offered to the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import ColumnElement, delete, func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.logging import get_logger
from nudge.metrics import STREAM_EVENTS
from nudge.settings import Settings
from nudge.store import StreamEvent, read_sessions, utcnow
from nudge.store.stream import LIVE

from .broker import RedisDelivery
from .sink import Delivery, DeliveryFailed
from .webhook import WebhookDelivery

log = get_logger(__name__)
PRUNE_EVERY = 3600.0
"""Seconds between two sweeps of delivered rows past their retention."""
MAX_ERROR = 500


def backoff(attempts: int, *, low: float, high: float, jitter: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: ``low`` doubled per failure,
    capped at ``high``, then spread over its upper half by ``jitter`` (0 to 1), so that sinks and
    gateways that failed together do not all come back at the same instant."""
    base = min(high, low * 2.0 ** min(max(attempts - 1, 0), 62))
    return base * (0.5 + 0.5 * jitter)


@dataclass(frozen=True, slots=True)
class Pass:
    """What one pass over a sink did."""

    claimed: int = 0
    delivered: bool = False
    """Whether the sink took every event claimed."""
    retry_in: float | None = None
    """After a failed batch: seconds before the sink is tried again."""
    refused: int = 0
    """Events the sink refused on their own (each backs off by itself, or is parked)."""
    parked: int = 0
    """Of those, the ones refused ``max_refusals`` times: parked."""


class StreamDispatcher:
    """Delivers every sink's due events; ``start`` runs it in the background, ``aclose`` stops it.

    Args:
        sessions: The store the outbox is in.
        deliveries: One per configured sink.
        poll_every: Seconds between two looks at an idle sink.
        batch_size: Most events per delivery.
        retry_min: The first retry's delay, in seconds.
        retry_max: The longest delay between two attempts.
        lease: Seconds a claimed batch is reserved for its delivery (longer than one can take).
        retention: How long delivered rows are kept.
        max_refusals: Refusals of one event on its own before it is parked.
        clock: The time now (tests move it).
        jitter: A number in [0, 1) per failed batch.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        deliveries: Sequence[Delivery],
        *,
        poll_every: float = 1.0,
        batch_size: int = 100,
        retry_min: float = 1.0,
        retry_max: float = 600.0,
        lease: float = 60.0,
        retention: timedelta = timedelta(days=7),
        max_refusals: int = 10,
        clock: Callable[[], datetime] = utcnow,
        jitter: Callable[[], float] = random.random,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._sessions = sessions
        self._reads = read_sessions(sessions)
        self._postgres = sessions.kw["bind"].dialect.name == "postgresql"
        self._deliveries = list(deliveries)
        self._poll_every = poll_every
        self._batch_size = batch_size
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._lease = timedelta(seconds=lease)
        self._retention = retention
        self._max_refusals = max_refusals
        self._clock = clock
        self._jitter = jitter
        self._client = client
        """The webhooks' HTTP client, when the dispatcher made it (``aclose`` closes it)."""
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_settings(
        cls, settings: Settings, sessions: async_sessionmaker[AsyncSession]
    ) -> StreamDispatcher | None:
        """The dispatcher for the configured sinks, or None when there is none."""
        if not settings.stream_sinks:
            return None
        timeout = settings.stream_timeout.total_seconds()
        # The broker first: nothing is left open if its URL is refused (the settings check it).
        broker = RedisDelivery(settings.stream_broker, timeout=timeout) if settings.stream_broker else None
        client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
        deliveries: list[Delivery] = [
            WebhookDelivery(config, client=client) for config in settings.stream_webhooks
        ]
        if broker is not None:
            deliveries.append(broker)
        return cls(
            sessions,
            deliveries,
            poll_every=settings.stream_poll_every.total_seconds(),
            batch_size=settings.stream_batch_size,
            retry_min=settings.stream_retry_min.total_seconds(),
            retry_max=settings.stream_retry_max.total_seconds(),
            # Connect, write, read and the pool each get the timeout: a request is over well within this.
            lease=4 * timeout + 5,
            retention=settings.stream_retention,
            max_refusals=settings.stream_max_refusals,
            client=client,
        )

    def start(self) -> None:
        """Run one loop per sink, and the retention sweep, until ``aclose``."""
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._run(delivery)) for delivery in self._deliveries]
        self._tasks.append(asyncio.create_task(self._prune_every(PRUNE_EVERY)))
        log.info("stream_started", sinks=[d.config.name for d in self._deliveries])

    async def aclose(self, *, grace: float = 5.0) -> None:
        """Let a delivery under way finish (for up to ``grace`` seconds), then stop."""
        self._stopping.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        for delivery in self._deliveries:
            await delivery.aclose()
        if self._client is not None:
            await self._client.aclose()

    async def deliver_due(self, delivery: Delivery) -> Pass:
        """One pass over one sink: claim its due events (a batch at most), deliver, record.

        A batch the sink refuses for good is split in halves until each part is taken or is one
        event; a part that fails otherwise (the sink is down, slow, overloaded) ends the pass: it
        and the parts not tried yet back off together.
        """
        name = delivery.config.name
        rows = await self._claim(name)
        if not rows:
            return Pass()
        parts, delivered, refused, parked, first = [rows], 0, 0, 0, True
        while parts:
            part = parts.pop(0)
            ids = [row.id for row in part if row.id is not None]
            attempts = max(row.attempts for row in part) + 1
            if not first:  # the pass's first lease may run out while it splits: each part renews it
                await self._lease_rows([row.id for p in (part, *parts) for row in p if row.id is not None])
            first = False
            try:
                await delivery.deliver([row.body for row in part])
            except Exception as exc:  # noqa: BLE001 - whatever a sink raises, the batch is retried
                failed = exc if isinstance(exc, DeliveryFailed) else unexpected(name, exc)
                if failed.permanent and len(part) > 1:
                    half = (len(part) + 1) // 2
                    parts[:0] = [part[:half], part[half:]]
                    log.warning("stream_batch_split", sink=name, events=len(part), error=str(failed))
                    continue
                if failed.permanent:
                    parked += await self._refused(name, part[0], str(failed))
                    refused += 1
                    continue
                rest = [row.id for p in parts for row in p if row.id is not None]
                retry_in = backoff(attempts, low=self._retry_min, high=self._retry_max, jitter=self._jitter())
                await self._failed(ids, str(failed), retry_in)
                await self._release(rest, retry_in)
                STREAM_EVENTS.labels(name, "failed").inc(len(ids))
                log.warning(
                    "stream_batch_failed",
                    sink=name,
                    events=len(ids),
                    attempts=attempts,
                    error=str(failed),
                    retry_in=round(retry_in, 3),
                    waiting=len(rest),
                )
                return Pass(claimed=len(rows), retry_in=retry_in, refused=refused, parked=parked)
            await self._delivered(ids)
            delivered += len(ids)
            STREAM_EVENTS.labels(name, "delivered").inc(len(ids))
            log.info("stream_batch_delivered", sink=name, events=len(ids), attempts=attempts)
        return Pass(claimed=len(rows), delivered=delivered == len(rows), refused=refused, parked=parked)

    async def prune(self) -> int:
        """Delete delivered rows older than the retention; how many went."""
        async with self._sessions() as session:
            gone = await session.exec(  # type: ignore[call-overload]
                delete(StreamEvent).where(col(StreamEvent.delivered_at) < self._clock() - self._retention)
            )
            await session.commit()
        if gone.rowcount:
            log.info("stream_events_pruned", events=gone.rowcount)
        return int(gone.rowcount or 0)

    async def backlog(self) -> dict[str, int]:
        """Events per sink still to deliver (neither delivered nor parked)."""
        async with self._reads() as session:
            rows = await session.exec(
                select(StreamEvent.sink, func.count()).where(LIVE).group_by(col(StreamEvent.sink))
            )
            return dict(rows.all())

    async def parked(self) -> dict[str, int]:
        """Parked events per sink: refused too often, no longer offered."""
        async with self._reads() as session:
            rows = await session.exec(
                select(StreamEvent.sink, func.count())
                .where(col(StreamEvent.parked_at).is_not(None), col(StreamEvent.delivered_at).is_(None))
                .group_by(col(StreamEvent.sink))
            )
            return dict(rows.all())

    # ----- the loops -------------------------------------------------------------------------

    async def _run(self, delivery: Delivery) -> None:
        while not self._stopping.is_set():
            wait = self._poll_every
            try:
                done = await self.deliver_due(delivery)
            except Exception:  # noqa: BLE001 - the store was out of reach: logged, and tried again
                log.exception("stream_pass_failed", sink=delivery.config.name)
                wait = max(self._poll_every, self._retry_min)
            else:
                if done.retry_in is not None:
                    wait = done.retry_in  # the sink is failing: give it the batch's backoff
                elif done.claimed == self._batch_size:
                    wait = 0  # more are waiting
            await self._pause(wait)

    async def _prune_every(self, seconds: float) -> None:
        while not self._stopping.is_set():
            try:
                await self.prune()
            except Exception:  # noqa: BLE001 - tried again at the next sweep
                log.exception("stream_prune_failed")
            await self._pause(seconds)

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    # ----- the outbox ------------------------------------------------------------------------

    def _due(self, sink: str, now: datetime) -> list[ColumnElement[bool]]:
        return [
            col(StreamEvent.sink) == sink,
            col(StreamEvent.delivered_at).is_(None),
            col(StreamEvent.parked_at).is_(None),
            col(StreamEvent.next_attempt_at) <= now,
        ]

    async def _claim(self, sink: str) -> list[StreamEvent]:
        """The sink's due rows, leased to this pass. An idle sink costs one lock-free read."""
        now = self._clock()
        due = self._due(sink, now)
        async with self._reads() as session:
            if (await session.exec(select(StreamEvent.id).where(*due).limit(1))).first() is None:
                return []
        async with self._sessions() as session:
            # The due index's order: first due first, which is the order recorded for events not
            # tried yet.
            query = (
                select(StreamEvent)
                .where(*due)
                .order_by(col(StreamEvent.next_attempt_at), col(StreamEvent.id))
                .limit(self._batch_size)
            )
            if self._postgres:
                query = query.with_for_update(skip_locked=True)
            rows = list((await session.exec(query)).all())
            if rows:
                await session.exec(
                    update(StreamEvent)
                    .where(col(StreamEvent.id).in_([row.id for row in rows]))
                    .values(next_attempt_at=now + self._lease)
                )
            await session.commit()
        return rows

    async def _delivered(self, ids: list[int]) -> None:
        async with self._sessions() as session:
            await session.exec(
                update(StreamEvent)
                .where(col(StreamEvent.id).in_(ids))
                .values(delivered_at=self._clock(), attempts=col(StreamEvent.attempts) + 1, last_error=None)
            )
            await session.commit()

    async def _failed(self, ids: list[int], error: str, retry_in: float) -> None:
        async with self._sessions() as session:
            await session.exec(
                update(StreamEvent)
                .where(col(StreamEvent.id).in_(ids), col(StreamEvent.delivered_at).is_(None))
                .values(
                    attempts=col(StreamEvent.attempts) + 1,
                    next_attempt_at=self._clock() + timedelta(seconds=retry_in),
                    last_error=error[:MAX_ERROR],
                )
            )
            await session.commit()

    async def _release(self, ids: list[int], retry_in: float) -> None:
        """Claimed rows a pass did not get to try (the sink failed first): due again with the
        batch that failed, their attempts unchanged."""
        if not ids:
            return
        async with self._sessions() as session:
            await session.exec(
                update(StreamEvent)
                .where(col(StreamEvent.id).in_(ids), col(StreamEvent.delivered_at).is_(None))
                .values(next_attempt_at=self._clock() + timedelta(seconds=retry_in))
            )
            await session.commit()

    async def _lease_rows(self, ids: list[int]) -> None:
        """Renew the lease on rows a pass still holds."""
        async with self._sessions() as session:
            await session.exec(
                update(StreamEvent)
                .where(col(StreamEvent.id).in_(ids), col(StreamEvent.delivered_at).is_(None))
                .values(next_attempt_at=self._clock() + self._lease)
            )
            await session.commit()

    async def _refused(self, sink: str, row: StreamEvent, error: str) -> int:
        """The sink refused ``row`` on its own, for good: it backs off by itself, or is parked once
        refused ``max_refusals`` times (1 then, else 0)."""
        refusals = (row.refusals or 0) + 1
        attempts = row.attempts + 1
        park = refusals >= self._max_refusals
        retry_in = backoff(refusals, low=self._retry_min, high=self._retry_max, jitter=self._jitter())
        now = self._clock()
        async with self._sessions() as session:
            await session.exec(
                update(StreamEvent)
                .where(col(StreamEvent.id) == row.id, col(StreamEvent.delivered_at).is_(None))
                .values(
                    attempts=col(StreamEvent.attempts) + 1,
                    refusals=func.coalesce(col(StreamEvent.refusals), 0) + 1,
                    next_attempt_at=now + timedelta(seconds=retry_in),
                    last_error=error[:MAX_ERROR],
                    parked_at=now if park else None,
                )
            )
            await session.commit()
        fields = {"sink": sink, "event_id": row.event_id, "kind": row.kind, "attempts": attempts}
        if park:
            STREAM_EVENTS.labels(sink, "parked").inc()
            log.error("stream_event_parked", **fields, refusals=refusals, error=error)
            return 1
        STREAM_EVENTS.labels(sink, "refused").inc()
        log.warning(
            "stream_event_refused", **fields, refusals=refusals, error=error, retry_in=round(retry_in, 3)
        )
        return 0


def unexpected(sink: str, exc: Exception) -> DeliveryFailed:
    """A delivery's error that is not ``DeliveryFailed`` (a bug, or a client's own error): retried
    with backoff like a sink that is down. Only its type is kept: its text may quote a secret URL."""
    log.warning("stream_delivery_error", sink=sink, error=type(exc).__name__)
    return DeliveryFailed(f"{type(exc).__name__}", sink=sink)
