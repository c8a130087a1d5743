"""``nudge.client`` against the real gateway over loopback: what it sends is what the gateway
stores (counted in its database, not taken from the client's answers), a retry never counts an
event twice, refusals carry the gateway's reason, and batches flush in the background."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlmodel import func, select

from nudge.client import AsyncNudge, Nudge, Refused, Retry, Unavailable, event_body
from nudge.store import Customer, EventRecord, JourneyEntry
from starter.api.services.intake import EventRouter
from tests.api.conftest import Gateway
from tests.polling import wait_until

QUICK = Retry(attempts=4, first_delay=0.01, max_delay=0.05)


def key_of(gateway: Gateway) -> str:
    return str(gateway.http.headers["authorization"]).removeprefix("Bearer ")


def client(gateway: Gateway, **options: Any) -> Nudge:
    return Nudge(str(gateway.http.base_url), key_of(gateway), retry=QUICK, **options)


def aclient(gateway: Gateway, **options: Any) -> AsyncNudge:
    return AsyncNudge(str(gateway.http.base_url), key_of(gateway), retry=QUICK, **options)


async def stored(gateway: Gateway, *event_ids: str) -> dict[str, int]:
    """How many rows the gateway holds for each event id."""
    async with gateway.sessions() as session:
        rows = await session.exec(
            select(EventRecord.event_id, func.count())
            .where(EventRecord.event_id.in_(event_ids))  # type: ignore[attr-defined]
            .group_by(EventRecord.event_id)
        )
        found = dict(rows.all())
    return {event_id: found.get(event_id, 0) for event_id in event_ids}


async def test_identify_quotes_an_id_that_holds_url_characters(gateway: Gateway, customer_id: str) -> None:
    """Ids are any printable text: ``?`` and ``#`` must reach the gateway as part of the id."""
    ids = [f"{customer_id}?q=1", f"{customer_id}#h"]
    with client(gateway) as nudge:
        for each in ids:
            await asyncio.to_thread(nudge.identify, {"id": each, "name": "Ada"})
    async with gateway.sessions() as session:
        found = [await session.get(Customer, each) for each in ids]
    assert [c.id if c else None for c in found] == ids


async def test_identify_then_track_in_the_blocking_client(gateway: Gateway, customer_id: str) -> None:
    """identify stores the profile (phone in E.164); track starts the journey; the same event id
    sent again is the gateway's duplicate, stored once."""
    with client(gateway) as nudge:
        profile = {"id": customer_id, "name": "Ada", "phone": "138 0013 8000"}
        await asyncio.to_thread(nudge.identify, profile)
        first = await asyncio.to_thread(
            nudge.track, customer_id, "cart_abandoned", {"cart_id": "k1"}, event_id=f"{customer_id}-cart"
        )
        again = await asyncio.to_thread(
            nudge.track, customer_id, "cart_abandoned", {"cart_id": "k1"}, event_id=f"{customer_id}-cart"
        )
    async with gateway.sessions() as session:
        customer = await session.get(Customer, customer_id)
        entries = (
            await session.exec(select(JourneyEntry).where(JourneyEntry.customer_id == customer_id))
        ).all()
    assert customer is not None and customer.phone == "+8613800138000"
    assert (first.duplicate, again.duplicate) == (False, True)
    assert (
        first.workflow_ids
        == [e.workflow_id for e in entries]
        == [f"journey:cart_abandonment:{customer_id}:k1"]
    )
    assert await stored(gateway, f"{customer_id}-cart") == {f"{customer_id}-cart": 1}


async def test_refusals_carry_the_gateways_reason(gateway: Gateway, customer_id: str) -> None:
    """A 4xx is ``Refused`` at once (no retry) with the field and why; a wrong key is a 401."""
    async with aclient(gateway) as nudge:
        with pytest.raises(Refused) as bad_name:
            await nudge.track(customer_id, "Not A Name")
        with pytest.raises(Refused) as bad_phone:
            await nudge.identify({"id": customer_id, "phone": "12"})
    async with AsyncNudge(str(gateway.http.base_url), "nk_forged", retry=QUICK) as forged:
        with pytest.raises(Refused) as unknown_key:
            await forged.track(customer_id, "page_viewed")
    assert bad_name.value.status == 422 and "body.name" in bad_name.value.reason
    assert bad_phone.value.status == 422 and "body.phone" in bad_phone.value.reason
    assert (unknown_key.value.status, unknown_key.value.reason) == (
        401,
        "the API key is unknown, revoked or malformed",
    )


class LosesAnswers(httpx.AsyncBaseTransport):
    """Loopback HTTP that delivers the first ``lose`` requests and then loses their answers (a
    dropped connection, as a proxy's 502): the gateway did the work, the sender cannot know."""

    def __init__(self, lose: int, *, status: int | None = None) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.lose = lose
        self.status = status
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        response = await self._inner.handle_async_request(request)
        await response.aread()
        if self.requests > self.lose:
            return response
        if self.status is not None:
            return httpx.Response(self.status, request=request)
        raise httpx.ReadError("connection reset after the request was sent", request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.mark.parametrize("status", [None, 502], ids=["connection-lost", "bad-gateway"])
async def test_a_retry_after_a_lost_answer_is_stored_once(
    gateway: Gateway, customer_id: str, status: int | None
) -> None:
    """The first two answers are lost after the gateway stored the event: the client's retries
    send the same event id, the gateway calls it a duplicate, and one row exists."""
    transport = LosesAnswers(2, status=status)
    async with aclient(gateway, transport=transport) as nudge:
        result = await nudge.track(customer_id, "page_viewed", {"path": "/sale"})
    assert transport.requests == 3
    assert result.duplicate is True  # the first delivery stored it
    assert await stored(gateway, result.event_id) == {result.event_id: 1}


async def test_retries_used_up_raise_unavailable() -> None:
    """Nobody listening: after its tries the client raises ``Unavailable`` naming the request."""
    async with AsyncNudge("http://127.0.0.1:9", retry=QUICK) as nudge:
        with pytest.raises(Unavailable, match="POST /v1/events: ConnectError.*after 4 tries"):
            await nudge.track("c1", "page_viewed")


async def test_a_batch_that_fails_part_way_is_sent_again_and_each_event_is_stored_once(
    gateway: Gateway, customer_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Routing fails on the second of three events (500, the first already stored): the client
    sends the whole batch again, the first is a duplicate, the rest are routed, once each."""
    events = [event_body(customer_id, "page_viewed", {"n": n}, None, None) for n in range(3)]
    route = EventRouter.route
    failed: list[str] = []

    async def failing_once(self: EventRouter, event: Any) -> Any:
        if event.event_id == events[1]["event_id"] and not failed:
            failed.append(event.event_id)
            raise RuntimeError("Temporal went away")
        return await route(self, event)

    monkeypatch.setattr(EventRouter, "route", failing_once)
    async with aclient(gateway) as nudge:
        results = await nudge.track_many(events)
    ids = [e["event_id"] for e in events]
    assert failed == [ids[1]]
    assert [(r.event_id, r.duplicate) for r in results] == [(ids[0], True), (ids[1], False), (ids[2], False)]
    assert await stored(gateway, *ids) == dict.fromkeys(ids, 1)


async def test_the_blocking_batch_flushes_in_the_background_and_on_close(
    gateway: Gateway, customer_id: str
) -> None:
    """Three events flush by themselves within the interval, before close; 250 more go out in
    requests of at most 100 on close. Every one is stored once."""
    with client(gateway) as nudge:
        batch = nudge.batch(max_size=100, flush_interval=0.05)
        early = [batch.track(customer_id, "page_viewed", {"n": n}) for n in range(3)]
        await wait_until(
            lambda: _all_stored(gateway, early), what="the background flush", timeout=30, every=0.05
        )
        late = [batch.track(customer_id, "page_viewed", {"n": n}) for n in range(250)]
        await asyncio.to_thread(batch.close)
    assert batch.pending == []
    assert await stored(gateway, *early, *late) == dict.fromkeys([*early, *late], 1)


async def _all_stored(gateway: Gateway, event_ids: list[str]) -> bool:
    return set((await stored(gateway, *event_ids)).values()) == {1}


async def test_a_refused_batch_goes_to_on_refused_and_the_others_are_stored(
    gateway: Gateway, customer_id: str
) -> None:
    """A batch holding an event the gateway refuses (422) is handed to ``on_refused`` with the
    reason; the next batch is still sent. Without ``on_refused``, close raises it."""
    refused: list[tuple[list[str], str]] = []
    async with aclient(gateway) as nudge:
        async with nudge.batch(
            max_size=2,
            flush_interval=10,
            on_refused=lambda chunk, e: refused.append(([b["name"] for b in chunk], e.reason)),
        ) as batch:
            batch.track(customer_id, "page_viewed")
            batch.track(customer_id, "Bad Name")
            good = [batch.track(customer_id, "page_viewed", {"n": n}) for n in range(2)]
        plain = nudge.batch(max_size=10, flush_interval=10)
        plain.track(customer_id, "Bad Name")
        with pytest.raises(Refused, match="events.0.name"):
            await plain.aclose()
    [(names, reason)] = refused
    assert names == ["page_viewed", "Bad Name"] and "body.events.1.name" in reason
    assert await stored(gateway, *good) == dict.fromkeys(good, 1)


async def test_the_async_batch_keeps_events_queued_while_the_gateway_is_away(customer_id: str) -> None:
    """With nobody listening the background flush keeps the events; close raises ``Unavailable``
    with them still pending, nothing dropped."""
    async with AsyncNudge("http://127.0.0.1:9", retry=QUICK) as nudge:
        batch = nudge.batch(max_size=2, flush_interval=0.01)
        ids = [batch.track(customer_id, "page_viewed", {"n": n}) for n in range(5)]
        await asyncio.sleep(0)  # the flush task runs
        with pytest.raises(Unavailable):
            await batch.aclose()
    assert [e["event_id"] for e in batch.pending] == ids


def test_a_naive_occurred_at_is_refused_before_sending() -> None:
    from datetime import datetime

    with pytest.raises(ValueError, match="timezone"):
        event_body("c1", "page_viewed", None, None, datetime(2026, 12, 1, 10, 0))
    assert len(event_body("c1", "page_viewed", None, None, None)["event_id"]) == 32
    assert uuid.UUID(event_body("c1", "page_viewed", None, None, None)["event_id"])


def test_a_callback_that_raises_does_not_kill_the_flush_thread_and_close_raises_it() -> None:
    """``on_refused`` raising in the background thread: the thread lives on and flushes what is
    tracked later, and ``close`` raises the callback's error instead of it passing unseen."""
    import time

    refusing = httpx.MockTransport(lambda request: httpx.Response(422, json={"detail": [{"msg": "no"}]}))
    calls: list[int] = []

    def callback(events: list[dict[str, object]], exc: Exception) -> None:
        calls.append(len(events))
        if len(calls) == 1:
            raise RuntimeError("the callback broke")

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 30
        while len(calls) < count:
            assert time.monotonic() < deadline, f"the background thread flushed {len(calls)} times"
            time.sleep(0.01)

    with Nudge("http://gateway.test", transport=refusing, retry=QUICK) as nudge:
        batch = nudge.batch(max_size=1, flush_interval=0.01, on_refused=callback)
        batch.track("c1", "page_viewed")
        wait_for(1)
        batch.track("c1", "page_viewed")
        wait_for(3)  # the first again (kept queued), then the second: the thread is alive
        with pytest.raises(RuntimeError, match="the callback broke"):
            batch.close()
