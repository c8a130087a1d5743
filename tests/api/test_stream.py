"""The stream out through the real gateway: receipts, clicks, replies and conversions published
to a loopback webhook once each, with no number or text unless the sink opted in; every event
recorded while the sink was stopped, or while the gateway was, arrives once they are back."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.testing import WorkflowEnvironment

from activities.receipts import Receipts
from nudge.models import Event, MessageStatus
from nudge.settings import Settings
from nudge.sinks import EventKind, StreamWebhook
from nudge.store import Customer, Link, Message, StreamEvent, create_engine, init_db, session_factory, utcnow
from simulator.customer import HANDSET_BROWSER
from starter.api import create_app
from starter.api.services.attribution import Attribution, publish_conversion
from tests.api.conftest import Gateway
from tests.api.test_gateway import add_message, event
from tests.api.test_webhooks import TWILIO_SID, post_twilio
from tests.polling import wait_until
from tests.servers import serve
from tests.stream_receiver import Receiver
from workflows.journeys.cart_abandonment import CartAbandonment

FAST = {
    "stream_poll_every": timedelta(milliseconds=20),
    "stream_retry_min": timedelta(milliseconds=50),
    "stream_retry_max": timedelta(milliseconds=200),
    "stream_timeout": timedelta(seconds=2),
}
"""Dispatcher timings for tests: a stopped sink is retried every 50-200 ms."""


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """The operator's CRM webhook (no personal data), on loopback."""
    receiver = Receiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        if receiver.running:
            await receiver.stop()


@pytest.fixture
async def pii_receiver() -> AsyncIterator[Receiver]:
    """A second sink that opted in to personal data, for replies only."""
    receiver = Receiver(secret="pii-secret-for-tests")
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


def webhook(receiver: Receiver, name: str, **options: Any) -> StreamWebhook:
    return StreamWebhook(name=name, url=receiver.url, secret=SecretStr(receiver.secret), **options)


@pytest.fixture
def gateway_settings(gateway_settings: Settings, receiver: Receiver, pii_receiver: Receiver) -> Settings:
    """The gateway streaming to both receivers."""
    pii = webhook(pii_receiver, "dwh", include_pii=True, kinds={EventKind.REPLIED, EventKind.OPTED_OUT})
    return gateway_settings.model_copy(update={"stream_webhooks": [webhook(receiver, "crm"), pii], **FAST})


async def outbox(sessions: async_sessionmaker[AsyncSession], sink: str = "crm") -> list[StreamEvent]:
    async with sessions() as session:
        query = select(StreamEvent).where(StreamEvent.sink == sink).order_by(col(StreamEvent.id))
        return list((await session.exec(query)).all())


async def receipt(http: httpx.AsyncClient, message: Message, status: str) -> bool:
    """The simulator's receipt for ``message`` through the gateway's webhook; whether it applied."""
    body = {"id": message.provider_message_id, "client_ref": message.id, "status": status}
    response = await http.post("/v1/webhooks/simulator/status", json=body)
    assert response.status_code == 200, response.text
    applied: bool = response.json()["applied"]
    return applied


def no_personal_data(events: list[dict[str, Any]]) -> bool:
    return not any({"to", "body", "from", "text"} & event.keys() for event in events)


async def test_stream_publishes_a_receipt_once_and_a_duplicate_not_at_all(
    gateway: Gateway, receiver: Receiver, customer_id: str
) -> None:
    """A carrier's ``sent`` publishes nothing (the send's own ``sent`` said it); the delivery
    receipt reaches the sink as one signed ``delivered`` event naming the message, without its
    number or text; the same receipt again publishes nothing."""
    message = await add_message(gateway, customer_id)
    assert await receipt(gateway.http, message, "sent")
    assert await receipt(gateway.http, message, "delivered")
    assert not await receipt(gateway.http, message, "delivered")

    await wait_until(lambda: len(receiver.events()) >= 1, what="the delivered event")
    [delivered] = receiver.events()
    assert {k: delivered[k] for k in ("kind", "message_id", "customer_id", "status", "journey")} == {
        "kind": "delivered",
        "message_id": message.id,
        "customer_id": customer_id,
        "status": "delivered",
        "journey": "cart_abandonment",
    }
    assert no_personal_data(receiver.events()) and all(p.valid for p in receiver.posted)
    assert [row.kind for row in await outbox(gateway.sessions)] == ["delivered"]


async def test_stream_publishes_a_persons_first_click_and_no_bots(
    gateway: Gateway, receiver: Receiver, customer_id: str
) -> None:
    """A preview fetcher's request publishes nothing; a person's first click publishes
    ``clicked``; their second click, which changes nothing, publishes nothing more."""
    delivered = utcnow() - timedelta(minutes=1)
    message = await add_message(
        gateway, customer_id, status="delivered", delivered_at=delivered, created_at=delivered
    )
    code = f"S{uuid.uuid4().hex[:7]}"
    async with gateway.sessions() as session:
        session.add(Link(code=code, message_id=message.id, target_url="https://shop.example.com/p"))
        await session.commit()

    await gateway.http.get(f"/l/{code}", headers={"user-agent": "WhatsApp/2.23.20.0 A"})
    assert await outbox(gateway.sessions) == []
    await gateway.http.get(f"/l/{code}", headers={"user-agent": HANDSET_BROWSER})
    await gateway.http.get(f"/l/{code}", headers={"user-agent": HANDSET_BROWSER})

    assert [(row.kind, row.body["message_id"]) for row in await outbox(gateway.sessions)] == [
        ("clicked", message.id)
    ]
    await wait_until(lambda: len(receiver.events()) >= 1, what="the clicked event")
    assert [e["kind"] for e in receiver.events()] == ["clicked"]


async def test_stream_publishes_a_stop_reply_with_the_number_only_where_opted_in(
    gateway: Gateway, receiver: Receiver, pii_receiver: Receiver, customer_id: str
) -> None:
    """A STOP publishes ``replied`` and ``opted_out`` for the number's customer: the CRM sink
    gets neither the number nor the words, the opted-in sink gets both, under the same ids; the
    provider's redelivery publishes nothing."""
    number = f"+1415555{uuid.uuid4().int % 10_000:04d}"
    async with gateway.sessions() as session:
        session.add(Customer(id=customer_id, phone=number))
        await session.commit()
    form = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": TWILIO_SID,
        "From": number,
        "To": "+15005550006",
        "Body": "STOP",
        "NumMedia": "0",
    }
    for _ in range(2):
        assert (await post_twilio(gateway, "/v1/webhooks/twilio/inbound", form)).status_code == 200

    await wait_until(lambda: len(receiver.events()) >= 2, what="the CRM's reply events")
    await wait_until(lambda: len(pii_receiver.events()) >= 2, what="the warehouse's reply events")
    plain = {e["kind"]: e for e in receiver.events()}
    personal = {e["kind"]: e for e in pii_receiver.events()}
    assert sorted(plain) == sorted(personal) == ["opted_out", "replied"]
    assert plain["replied"]["customer_id"] == customer_id and plain["replied"]["keyword"] == "stop"
    assert plain["opted_out"]["source"] == "reply"
    assert no_personal_data(receiver.events())
    assert (personal["replied"]["from"], personal["replied"]["text"]) == (number, "STOP")
    assert {e["id"] for e in plain.values()} == {e["id"] for e in personal.values()}
    assert len(await outbox(gateway.sessions)) == 2


async def test_stream_publishes_a_conversion_with_its_revenue(
    gateway: Gateway, receiver: Receiver, customer_id: str
) -> None:
    """A goal event credited to a message publishes ``converted`` with the goal, revenue and
    currency; the same event redelivered publishes nothing."""
    message = await add_message(
        gateway, customer_id, status="delivered", created_at=utcnow() - timedelta(hours=1)
    )
    paid = event(customer_id, "order_paid", amount=59.0, currency="CNY")
    for _ in range(2):
        assert (await gateway.http.post("/v1/events", json=paid)).status_code == 202

    await wait_until(lambda: len(receiver.events()) >= 1, what="the converted event")
    [converted] = receiver.events()
    assert {
        k: converted[k] for k in ("kind", "message_id", "goal_event", "goal_event_id", "revenue", "currency")
    } == {
        "kind": "converted",
        "message_id": message.id,
        "goal_event": "order_paid",
        "goal_event_id": paid["event_id"],
        "revenue": 59.0,
        "currency": "CNY",
    }
    assert [row.kind for row in await outbox(gateway.sessions)] == ["converted"]


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity"])
async def test_stream_a_conversion_whose_amount_is_not_a_number_has_no_revenue(
    gateway: Gateway, gateway_settings: Settings, receiver: Receiver, customer_id: str, amount: str
) -> None:
    """The gateway refuses ``NaN`` and ``Infinity`` in an event (422, nothing published); an event
    that reaches attribution with one anyway (built without validation) is credited without
    revenue, and its ``converted`` event commits (on PostgreSQL too, whose JSON refuses them) and
    reaches the sink as valid JSON."""
    message = await add_message(
        gateway, customer_id, status="delivered", created_at=utcnow() - timedelta(hours=1)
    )
    paid = event(customer_id, "order_paid", currency="CNY")
    raw = json.dumps(paid).replace('"properties": {', f'"properties": {{"amount": {amount}, ', 1)
    headers = {"content-type": "application/json"}
    assert (await gateway.http.post("/v1/events", content=raw, headers=headers)).status_code == 422
    assert await outbox(gateway.sessions) == []

    sinks = gateway_settings.stream_sinks
    attribution = Attribution([CartAbandonment], window=timedelta(hours=48))
    unchecked = Event.model_construct(**(paid | {"properties": {"amount": float(amount), "currency": "CNY"}}))
    async with gateway.sessions() as session:
        conversion = await attribution.conversion(session, unchecked)
        assert conversion is not None and conversion.message_id == message.id
        session.add(conversion)
        publish_conversion(session, sinks, conversion)
        await session.commit()

    assert conversion.revenue is None
    await wait_until(lambda: len(receiver.posted) >= 1, what="the converted event")
    [posted] = receiver.posted
    converted = json.loads(posted.body, parse_constant=lambda token: pytest.fail(f"{token} in the body"))
    assert [(e["kind"], e["revenue"]) for e in converted["events"]] == [("converted", None)]


async def test_stream_events_recorded_while_the_sink_is_stopped_arrive_once_it_is_back(
    gateway: Gateway, receiver: Receiver, customer_id: str
) -> None:
    """With the sink's server shut down, events recorded meanwhile are retried (attempts grow,
    none delivered); started again on the same port, it gets every event, each signature valid,
    and deduplicated by id each event exactly once."""
    messages = [await add_message(gateway, f"{customer_id}-{n}") for n in range(6)]
    for message in messages[:2]:
        assert await receipt(gateway.http, message, "delivered")
    await wait_until(lambda: len(receiver.unique()) == 2, what="the events before the stop")

    await receiver.stop()
    for message, status in zip(
        messages[2:], ["delivered", "undelivered", "failed", "delivered"], strict=True
    ):
        assert await receipt(gateway.http, message, status)

    async def retried() -> bool:
        later = (await outbox(gateway.sessions))[2:]
        return len(later) == 4 and all(row.attempts >= 3 and row.delivered_at is None for row in later)

    await wait_until(retried, what="the events recorded while the sink was down, retried", timeout=20)
    assert all("ConnectError" in (row.last_error or "") for row in (await outbox(gateway.sessions))[2:])
    assert len(receiver.unique()) == 2

    await receiver.start()

    async def all_delivered() -> bool:
        return all(row.delivered_at is not None for row in await outbox(gateway.sessions))

    await wait_until(all_delivered, what="every event delivered after the sink came back", timeout=20)
    rows = await outbox(gateway.sessions)
    assert all(posted.valid for posted in receiver.posted)
    assert sorted(receiver.unique()) == sorted(row.event_id for row in rows)
    kinds = sorted((e["message_id"], e["kind"]) for e in receiver.unique().values())
    expected = ["delivered", "delivered", "delivered", "undelivered", "failed", "delivered"]
    assert kinds == sorted((m.id, kind) for m, kind in zip(messages, expected, strict=True))
    assert no_personal_data(receiver.events())


async def test_stream_events_recorded_while_the_gateway_is_down_arrive_once_it_is_back(
    env: WorkflowEnvironment, gateway_settings: Settings, receiver: Receiver
) -> None:
    """Receipts the worker records while no gateway runs (its receipt sweep) wait in the outbox;
    the gateway, started again, delivers them."""
    settings = gateway_settings
    engine = create_engine(settings.sqlalchemy_url)
    await init_db(engine)
    sessions = session_factory(engine)
    try:
        ids = [uuid.uuid4().hex for _ in range(3)]
        async with sessions() as session:
            for n, message_id in enumerate(ids):
                session.add(
                    Message(
                        id=message_id,
                        idempotency_key=f"down/{message_id}",
                        workflow_id=f"wf-down-{n}",
                        journey="cart_abandonment",
                        step="send:cart_reminder",
                        customer_id=f"cust-down-{n}",
                        template="cart_reminder",
                        category="marketing",
                        to="+8613800138000",
                        status="submitted",
                        provider="simulator",
                        provider_message_id=f"SIMDOWN{n}{message_id[:8]}",
                    )
                )
            await session.commit()
        async with (
            serve(create_app(settings, client=env.client)) as url,
            httpx.AsyncClient(base_url=url) as http,
        ):
            async with sessions() as session:
                first = await session.get(Message, ids[0])
            assert first is not None and await receipt(http, first, "delivered")
            await wait_until(lambda: len(receiver.unique()) == 1, what="the event before the gateway stopped")

        sweep = Receipts(client=env.client, sessions=sessions, sinks=settings.stream_sinks)
        for message_id in ids[1:]:
            await sweep.receive(
                provider="simulator",
                message_id=message_id,
                provider_message_id=None,
                status=MessageStatus.DELIVERED,
                error_code=None,
                at=None,
                raw={},
            )
        waiting = (await outbox(sessions))[1:]
        assert [(row.attempts, row.delivered_at) for row in waiting] == [(0, None), (0, None)]

        async with serve(create_app(settings, client=env.client)):

            async def all_delivered() -> bool:
                return all(row.delivered_at is not None for row in await outbox(sessions))

            await wait_until(all_delivered, what="the events recorded while the gateway was down")
    finally:
        await engine.dispose()
    assert sorted(e["message_id"] for e in receiver.unique().values()) == sorted(ids)
    assert len(receiver.events()) == 3


async def test_stream_forgets_the_number_and_text_of_an_erased_customer(
    gateway: Gateway, pii_receiver: Receiver, customer_id: str
) -> None:
    """Erasing a customer clears the number and words from the events kept for a sink that took
    personal data; the events themselves stay."""
    number = f"+1415556{uuid.uuid4().int % 10_000:04d}"
    async with gateway.sessions() as session:
        session.add(Customer(id=customer_id, phone=number))
        await session.commit()
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": TWILIO_SID, "From": number, "Body": "hello"}
    form |= {"To": "+15005550006", "NumMedia": "0"}
    assert (await post_twilio(gateway, "/v1/webhooks/twilio/inbound", form)).status_code == 200
    [kept] = await outbox(gateway.sessions, "dwh")
    assert (kept.body["from"], kept.body["text"]) == (number, "hello")

    assert (await gateway.http.post(f"/v1/customers/{customer_id}:forget")).status_code == 200

    [forgotten] = await outbox(gateway.sessions, "dwh")
    assert (forgotten.event_id, forgotten.kind) == (kept.event_id, "replied")
    assert "from" not in forgotten.body and "text" not in forgotten.body


async def test_stream_forgets_the_number_and_text_of_a_reply_from_before_the_number_was_the_customers(
    gateway: Gateway, pii_receiver: Receiver, customer_id: str
) -> None:
    """A reply from a number no customer had yet is published for nobody (``customer_id`` null);
    erasing the customer who has the number since clears that event's number and words too (it
    is found by the number's hash), and the hash goes with them."""
    number = f"+1415557{uuid.uuid4().int % 10_000:04d}"
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": TWILIO_SID, "From": number, "Body": "who?"}
    form |= {"To": "+15005550006", "NumMedia": "0"}
    assert (await post_twilio(gateway, "/v1/webhooks/twilio/inbound", form)).status_code == 200
    [kept] = await outbox(gateway.sessions, "dwh")
    assert (kept.customer_id, kept.body["from"], kept.body["text"]) == (None, number, "who?")
    [plain] = await outbox(gateway.sessions, "crm")
    assert plain.phone_hash is None  # a sink without personal data keeps not even the hash
    async with gateway.sessions() as session:
        session.add(Customer(id=customer_id, phone=number))
        await session.commit()

    assert (await gateway.http.post(f"/v1/customers/{customer_id}:forget")).status_code == 200

    [forgotten] = await outbox(gateway.sessions, "dwh")
    assert (forgotten.event_id, forgotten.kind) == (kept.event_id, "replied")
    assert "from" not in forgotten.body and "text" not in forgotten.body
    assert forgotten.phone_hash is None
