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

from nudge.sinks import EventKind, StreamBroker, StreamWebhook
from nudge.store import StreamEvent, create_engine, publish, session_factory, utcnow
from starter.stream import DeliveryFailed, RedisDelivery, StreamDispatcher, WebhookDelivery, backoff, encode
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


class Picky:
    """A sink that refuses, with ``status``, any batch holding one of the ``poison`` events, and
    takes every other batch."""

    config = StreamWebhook(name="crm", url="http://127.0.0.1:9/hook", secret=SecretStr("x" * 16))

    def __init__(self, poison: set[str], *, status: int = 400) -> None:
        self.poison = poison
        self.status = status
        self.taken: list[str] = []
        self.calls = 0

    async def deliver(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.calls += 1
        if self.poison & {event["id"] for event in events}:
            raise DeliveryFailed(f"127.0.0.1: HTTP {self.status}", sink="crm", status=self.status)
        self.taken += [event["id"] for event in events]

    async def aclose(self) -> None:
        pass


async def test_one_refused_event_does_not_hold_back_the_others_and_ends_parked(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A receiver answers 400 to any batch with the poison event in it: the batch is split until
    the poison stands alone, every other event goes in the same pass, events recorded later go
    too, and the poison is parked after ``max_refusals`` refusals, out of the backlog."""
    picky = Picky(set())
    ids = await record(sessions, picky.config, 9)
    picky.poison = {ids[4]}
    clock = Clock()
    dispatcher = StreamDispatcher(
        sessions, [picky], batch_size=100, max_refusals=3, retry_min=30.0, clock=clock, jitter=lambda: 1.0
    )

    first = await dispatcher.deliver_due(picky)

    assert (first.claimed, first.delivered, first.refused, first.parked, first.retry_in) == (
        9,
        False,
        1,
        0,
        None,
    )
    assert sorted(picky.taken) == sorted(ids[:4] + ids[5:])
    later = await record(sessions, picky.config, 3)
    clock.advance(10)  # recorded on the real clock, a little after the dispatcher's now
    assert (await dispatcher.deliver_due(picky)).delivered  # the poison is not due: the others go
    assert picky.taken[-3:] == later
    for _ in range(2):
        clock.advance(600)
        more = await record(sessions, picky.config, 2)
        done = await dispatcher.deliver_due(picky)
        assert done.refused == 1 and picky.taken[-2:] == more
    assert done.parked == 1
    clock.advance(3600)
    assert (await dispatcher.deliver_due(picky)).claimed == 0
    poison = next(row for row in await rows(sessions) if row.event_id == ids[4])
    assert (poison.refusals, poison.parked_at is not None, poison.delivered_at) == (3, True, None)
    assert poison.last_error == "127.0.0.1: HTTP 400"
    assert await dispatcher.backlog() == {}
    assert await dispatcher.parked() == {"crm": 1}
    assert len(set(picky.taken)) == len(picky.taken) == 9 - 1 + 3 + 4


@pytest.mark.parametrize("status", [401, 404, 429, 503])
async def test_a_sink_level_failure_backs_the_batch_off_whole_and_parks_nothing(
    sessions: async_sessionmaker[AsyncSession], status: int
) -> None:
    """A 401, 404, 429 or 5xx is about the sink, not the events: one request, the batch backs
    off whole, nothing is split, refused or parked, however many times it happens."""
    picky = Picky(set(), status=status)
    ids = await record(sessions, picky.config, 4)
    picky.poison = set(ids)
    clock = Clock()
    dispatcher = StreamDispatcher(sessions, [picky], max_refusals=2, clock=clock, jitter=lambda: 1.0)
    for _ in range(4):
        done = await dispatcher.deliver_due(picky)
        assert (done.claimed, done.refused, done.retry_in is not None) == (4, 0, True)
        clock.advance(600)
    assert picky.calls == 4
    assert {(row.attempts, row.refusals, row.parked_at) for row in await rows(sessions)} == {(4, 0, None)}
    assert await dispatcher.backlog() == {"crm": 4}


async def test_a_transient_failure_while_splitting_backs_off_the_parts_not_tried_yet(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The sink refuses the batch (413), then goes down on the first half: the pass ends, every
    event claimed is due again after the backoff, and only those tried count an attempt."""

    class Flaky(Picky):
        async def deliver(self, events: Sequence[Mapping[str, Any]]) -> None:
            self.calls += 1
            if self.calls == 1:
                raise DeliveryFailed("127.0.0.1: HTTP 413", sink="crm", status=413)
            raise DeliveryFailed("127.0.0.1: HTTP 503", sink="crm", status=503)

    flaky = Flaky(set())
    await record(sessions, flaky.config, 4)
    clock = Clock()
    dispatcher = StreamDispatcher(sessions, [flaky], retry_min=2.0, clock=clock, jitter=lambda: 1.0)
    done = await dispatcher.deliver_due(flaky)
    assert (done.claimed, done.retry_in, flaky.calls) == (4, 2.0, 2)
    assert [(r.attempts, (r.next_attempt_at - clock.now).total_seconds()) for r in await rows(sessions)] == [
        (1, 2.0),
        (1, 2.0),
        (0, 2.0),
        (0, 2.0),
    ]


async def test_a_delivery_that_raises_anything_is_retried_with_backoff_and_no_secret_logged(
    sessions: async_sessionmaker[AsyncSession], client: httpx.AsyncClient
) -> None:
    """A webhook URL httpx cannot parse (``httpx.InvalidURL``, not an ``HTTPError``) fails the
    batch like a sink that is down: attempts and last_error set, backed off, no token kept."""
    sink = StreamWebhook.model_construct(
        name="crm",
        url="http://[::1/hook?token=s3cret",
        secret=SecretStr("x" * 16),
        include_pii=False,
        kinds=None,
    )
    await record(sessions, sink, 2)
    clock = Clock()
    delivery = WebhookDelivery(sink, client=client)
    dispatcher = StreamDispatcher(sessions, [delivery], retry_min=3.0, clock=clock, jitter=lambda: 1.0)

    done = await dispatcher.deliver_due(delivery)

    assert (done.claimed, done.retry_in) == (2, 3.0)
    for row in await rows(sessions):
        assert (row.attempts, row.delivered_at) == (1, None)
        assert row.last_error is not None and "s3cret" not in row.last_error
        assert (row.next_attempt_at - clock.now).total_seconds() == 3.0


async def test_sink_bodies_are_strict_json_and_an_event_that_is_not_is_refused_for_good(
    client: httpx.AsyncClient,
) -> None:
    """A NaN or an infinity never goes out as a token no JSON parser takes: the webhook's body and
    the broker's entry refuse it, as a permanent failure (the dispatcher isolates and parks it)."""
    bad = [{"id": "e1", "kind": "converted", "revenue": float("nan")}]
    with pytest.raises(ValueError, match="JSON"):
        encode(bad)
    webhook = WebhookDelivery(
        StreamWebhook(name="crm", url="http://127.0.0.1:9/hook", secret=SecretStr("x" * 16)), client=client
    )
    broker = RedisDelivery(StreamBroker(url=SecretStr("redis://127.0.0.1:9/0")), timeout=1.0)
    try:
        for delivery in (webhook, broker):
            with pytest.raises(DeliveryFailed, match="not JSON") as failed:
                await delivery.deliver(bad)
            assert failed.value.permanent
    finally:
        await broker.aclose()
