"""The broker sink against a real Redis at 127.0.0.1:6379 (skipped with the reason when none
answers): every event appended to the stream with its id, and events recorded while the broker
is out of reach (a loopback relay to it, stopped) appended once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.sinks import EventKind, StreamBroker
from nudge.store import Message, StreamEvent, publish, session_factory
from starter.stream import RedisDelivery, StreamDispatcher
from tests.stream.test_dispatcher import Clock

REDIS = ("127.0.0.1", 6379)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis(host=REDIS[0], port=REDIS[1], socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"Redis not reachable at {REDIS[0]}:{REDIS[1]} ({type(exc).__name__})")
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def stream_key(redis: Redis) -> AsyncIterator[str]:
    """A stream of this test's own, deleted afterwards."""
    key = f"nudge-test:{uuid.uuid4().hex}"
    try:
        yield key
    finally:
        await redis.delete(key)


class Relay:
    """A loopback TCP relay to Redis that can be stopped (refusing connections and cutting the
    open ones) and started again on the same port: the broker going away, as Nudge sees it."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*REDIS)
        self._writers |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        self._writers -= {writer, upstream_writer}


async def record(sessions: async_sessionmaker[AsyncSession], sink: StreamBroker, count: int) -> list[str]:
    ids = []
    for n in range(count):
        async with sessions() as session:
            message = Message(
                idempotency_key=f"broker/{uuid.uuid4().hex}",
                workflow_id=f"wf-{n}",
                journey="cart_abandonment",
                step="send:cart_reminder",
                customer_id=f"c{n}",
                template="cart_reminder",
                category="marketing",
                to="+8613800138000",
                body="Ada, your cart is waiting",
                status="delivered",
            )
            session.add(message)
            event_id = publish(session, [sink], EventKind.DELIVERED, message=message)
            await session.commit()
        assert event_id is not None
        ids.append(event_id)
    return ids


async def entries(redis: Redis, key: str) -> list[Any]:
    """The fields of each entry of the stream, oldest first."""
    added: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(key)  # type: ignore[assignment]
    return [fields for _, fields in added]


async def test_broker_appends_each_event_with_its_id_and_no_personal_data(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, stream_key: str
) -> None:
    """Three events become three stream entries carrying the event id, kind and the event as
    JSON, without the number or the text; the rows are delivered."""
    sink = StreamBroker(name="bus", url=SecretStr(f"redis://{REDIS[0]}:{REDIS[1]}/0"), stream=stream_key)
    ids = await record(sessions, sink, 3)
    delivery = RedisDelivery(sink, timeout=2.0)
    dispatcher = StreamDispatcher(sessions, [delivery])
    try:
        assert (await dispatcher.deliver_due(delivery)).delivered
    finally:
        await delivery.aclose()

    added = await entries(redis, stream_key)
    assert [(e[b"id"].decode(), e[b"kind"]) for e in added] == [(i, b"delivered") for i in ids]
    events = [json.loads(e[b"event"]) for e in added]
    assert [e["id"] for e in events] == ids and all("to" not in e and "body" not in e for e in events)
    async with sessions() as session:
        rows = (await session.exec(select(StreamEvent).order_by(col(StreamEvent.id)))).all()
    assert all(row.delivered_at is not None for row in rows)


async def test_broker_out_of_reach_gets_the_events_once_it_is_back(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, stream_key: str
) -> None:
    """With the relay to Redis stopped, a batch fails and is kept (attempts counted, the error
    named without the URL); with it started again on the same port, every event is appended."""
    relay = Relay()
    await relay.start()
    sink = StreamBroker(name="bus", url=SecretStr(f"redis://127.0.0.1:{relay.port}/0"), stream=stream_key)
    delivery = RedisDelivery(sink, timeout=2.0)
    try:
        await relay.stop()
        ids = await record(sessions, sink, 2)
        clock = Clock()
        dispatcher = StreamDispatcher(sessions, [delivery], retry_min=1.0, clock=clock, jitter=lambda: 1.0)
        failed = await dispatcher.deliver_due(delivery)
        assert (failed.claimed, failed.delivered) == (2, False)
        async with sessions() as session:
            rows = (await session.exec(select(StreamEvent))).all()
        assert all(r.attempts == 1 and r.delivered_at is None for r in rows)
        assert {r.last_error for r in rows} == {"redis: ConnectionError"}  # never the URL

        await relay.start()
        clock.advance(1.0)  # the failed batch's backoff
        assert (await dispatcher.deliver_due(delivery)).delivered
    finally:
        await delivery.aclose()
        with contextlib.suppress(AssertionError):
            await relay.stop()
    assert [e[b"id"].decode() for e in await entries(redis, stream_key)] == ids
