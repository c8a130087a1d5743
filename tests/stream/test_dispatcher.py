"""The dispatcher against a real loopback receiver: signed batches, a batch resent when its
answer was lost (the receiver deduplicates by id), exponential backoff up to its cap, and several
gateways sharing one outbox without delivering an event twice (``SKIP LOCKED`` on PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.sinks import EventKind, StreamWebhook
from nudge.store import StreamEvent, create_engine, publish, session_factory, utcnow
from starter.stream import DeliveryFailed, StreamDispatcher, WebhookDelivery, backoff
from tests.stream_receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        if receiver.running:
            await receiver.stop()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0), trust_env=False) as client:
        yield client


def sink_for(receiver: Receiver) -> StreamWebhook:
    return StreamWebhook(name="crm", url=receiver.url, secret=SecretStr(receiver.secret))


async def record(sessions: async_sessionmaker[AsyncSession], sink: StreamWebhook, count: int) -> list[str]:
    """``count`` clicks published for ``sink``, each in its own transaction; their event ids."""
    ids = []
    for n in range(count):
        async with sessions() as session:
            event_id = publish(session, [sink], EventKind.CLICKED, message_id=f"m{n}", customer_id=f"c{n}")
            await session.commit()
        assert event_id is not None
        ids.append(event_id)
    return ids


async def rows(sessions: async_sessionmaker[AsyncSession]) -> list[StreamEvent]:
    async with sessions() as session:
        return list((await session.exec(select(StreamEvent).order_by(col(StreamEvent.id)))).all())


class Clock:
    """The dispatcher's now, moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def test_dispatcher_delivers_signed_batches_and_marks_them_delivered(
    sessions: async_sessionmaker[AsyncSession], receiver: Receiver, client: httpx.AsyncClient
) -> None:
    """Five events in batches of two: three signed JSON requests, every event once and in the
    order recorded, each row delivered after one attempt; then an idle pass claims nothing."""
    sink = sink_for(receiver)
    ids = await record(sessions, sink, 5)
    delivery = WebhookDelivery(sink, client=client)
    dispatcher = StreamDispatcher(sessions, [delivery], batch_size=2)

    passes = [await dispatcher.deliver_due(delivery) for _ in range(4)]

    assert [p.claimed for p in passes] == [2, 2, 1, 0]
    assert all(p.valid and p.content_type == "application/json" for p in receiver.posted)
    assert [event["id"] for event in receiver.events()] == ids
    assert all((row.attempts, row.delivered_at is not None) == (1, True) for row in await rows(sessions))
    assert await dispatcher.backlog() == {}


async def test_dispatcher_resends_a_batch_whose_answer_was_lost(
    sessions: async_sessionmaker[AsyncSession], receiver: Receiver, client: httpx.AsyncClient
) -> None:
    """The receiver takes a batch but answers 500: the batch is kept, retried after its backoff
    with the same ids, and a receiver deduplicating by id sees each event exactly once."""
    sink = sink_for(receiver)
    ids = await record(sessions, sink, 3)
    clock = Clock()
    delivery = WebhookDelivery(sink, client=client)
    dispatcher = StreamDispatcher(sessions, [delivery], retry_min=2.0, clock=clock, jitter=lambda: 1.0)
    receiver.status = 500

    failed = await dispatcher.deliver_due(delivery)

    assert (failed.claimed, failed.delivered, failed.retry_in) == (3, False, 2.0)
    assert {(r.attempts, r.delivered_at, r.last_error) for r in await rows(sessions)} == {
        (1, None, "127.0.0.1: HTTP 500")
    }
    receiver.status = 204
    assert (await dispatcher.deliver_due(delivery)).claimed == 0  # not due before its backoff
    clock.advance(2.0)
    assert (await dispatcher.deliver_due(delivery)).delivered
    assert [e["id"] for e in receiver.events()] == ids + ids
    assert sorted(receiver.unique()) == sorted(ids)
    assert {(r.attempts, r.delivered_at is not None, r.last_error) for r in await rows(sessions)} == {
        (2, True, None)
    }


class Down:
    """A sink that never takes anything."""

    config = StreamWebhook(name="crm", url="http://127.0.0.1:9/hook", secret=SecretStr("x" * 16))

    def __init__(self) -> None:
        self.calls = 0

    async def deliver(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.calls += 1
        raise DeliveryFailed("127.0.0.1: ConnectError", sink="crm")

    async def aclose(self) -> None:
        pass


async def test_dispatcher_backs_off_exponentially_up_to_its_cap_and_never_drops(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Failures push the next attempt out by 1, 2, 4, 8, then 8 s (the cap) while attempts count
    up and the event stays; it is not tried before it is due."""
    down = Down()
    await record(sessions, down.config, 1)
    clock = Clock()
    dispatcher = StreamDispatcher(
        sessions, [down], retry_min=1.0, retry_max=8.0, clock=clock, jitter=lambda: 1.0
    )
    delays = []
    for _ in range(5):
        done = await dispatcher.deliver_due(down)
        [row] = await rows(sessions)
        delays.append((row.next_attempt_at - clock.now).total_seconds())
        assert done.retry_in == delays[-1]
        clock.advance(delays[-1] - 0.001)
        assert (await dispatcher.deliver_due(down)).claimed == 0  # not before it is due
        clock.advance(0.001)
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    [row] = await rows(sessions)
    assert (row.attempts, row.delivered_at, down.calls) == (5, None, 5)


def test_backoff_spreads_each_delay_over_its_upper_half() -> None:
    """Jitter keeps a delay between half and all of its exponential value, and under the cap."""
    assert [backoff(n, low=1, high=600, jitter=1.0) for n in (1, 2, 3, 10, 11, 400)] == [
        1,
        2,
        4,
        512,
        600,
        600,
    ]
    assert backoff(3, low=1, high=600, jitter=0.0) == 2.0
    assert backoff(10_000, low=1, high=600, jitter=0.5) == 450.0


async def test_two_gateways_share_one_outbox_without_delivering_twice(
    engine: AsyncEngine, db_url: str, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    """Two dispatchers on their own connections race over 40 events: each event reaches the
    receiver exactly once (no row is claimed by both)."""
    sink = sink_for(receiver)
    sessions = session_factory(engine)
    ids = await record(sessions, sink, 40)
    other = create_engine(db_url)
    try:

        async def drain(store: async_sessionmaker[AsyncSession]) -> None:
            delivery = WebhookDelivery(sink, client=client)
            dispatcher = StreamDispatcher(store, [delivery], batch_size=3)
            while (await dispatcher.deliver_due(delivery)).claimed:
                pass

        await asyncio.gather(drain(sessions), drain(session_factory(other)))
    finally:
        await other.dispose()
    assert sorted(e["id"] for e in receiver.events()) == sorted(ids)


async def test_dispatcher_on_postgres_skips_rows_another_gateway_holds(
    engine: AsyncEngine, db_url: str, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    """While another transaction holds the first rows locked, a pass delivers the others at once
    instead of waiting for it (``FOR UPDATE SKIP LOCKED``); the held ones go after it ends."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one write lock: claims never overlap there")
    sink = sink_for(receiver)
    sessions = session_factory(engine)
    ids = await record(sessions, sink, 6)
    delivery = WebhookDelivery(sink, client=client)
    dispatcher = StreamDispatcher(sessions, [delivery], batch_size=10)
    conninfo = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(conninfo) as holder:
        await holder.execute("SELECT id FROM stream_event ORDER BY id LIMIT 2 FOR UPDATE")
        async with asyncio.timeout(10):
            first = await dispatcher.deliver_due(delivery)
        assert [e["id"] for e in receiver.events()] == ids[2:]
        await holder.rollback()
    assert (first.claimed, (await dispatcher.deliver_due(delivery)).claimed) == (4, 2)
    assert sorted(receiver.unique()) == sorted(ids)


async def test_prune_deletes_only_delivered_rows_past_their_retention(
    sessions: async_sessionmaker[AsyncSession], receiver: Receiver, client: httpx.AsyncClient
) -> None:
    """A delivered row goes once older than the retention; an undelivered one stays, however old."""
    sink = sink_for(receiver)
    await record(sessions, sink, 2)
    clock = Clock()
    delivery = WebhookDelivery(sink, client=client)
    dispatcher = StreamDispatcher(
        sessions, [delivery], batch_size=1, clock=clock, retention=timedelta(days=1)
    )
    await dispatcher.deliver_due(delivery)
    clock.advance(86_400 + 1)
    assert await dispatcher.prune() == 1
    [left] = await rows(sessions)
    assert left.delivered_at is None
