"""Short-link requests through the gateway: every one recorded with a keyed hash of its address,
only a person's click counted; a scanner's within a second of delivery is redirected, not counted."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from datetime import timedelta
from typing import Any, cast

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client

from nudge.settings import Settings
from nudge.sinks import StreamWebhook
from nudge.store import Click, Link, Message, StreamEvent, session_factory, utcnow
from simulator.customer import HANDSET_BROWSER
from starter.api.services.clicks import Clicks
from starter.api.services.clicks import Request as ClickRequest
from tests.api.conftest import Gateway
from tests.api.test_gateway import add_message


async def _link(gateway: Gateway, *, delivered_ago: timedelta) -> tuple[str, str]:
    code = f"C{uuid.uuid4().hex[:7]}"
    delivered = utcnow() - delivered_ago
    message = await add_message(
        gateway, f"click-{code}", status="delivered", delivered_at=delivered, created_at=delivered
    )
    async with gateway.sessions() as session:
        session.add(Link(code=code, message_id=message.id, target_url="https://shop.example.com/p"))
        await session.commit()
    return code, message.id


async def _state(gateway: Gateway, code: str, message_id: str) -> tuple[list[Click], bool]:
    async with gateway.sessions() as session:
        clicks = (await session.exec(select(Click).where(Click.code == code).order_by(col(Click.id)))).all()
        message = await session.get(Message, message_id)
    assert message is not None
    return list(clicks), message.clicked


async def test_a_click_right_after_delivery_is_a_scanners_and_is_not_counted(gateway: Gateway) -> None:
    """A handset's GET 0 s after the delivery receipt redirects, is recorded as ``too_soon`` and
    leaves the message unclicked."""
    code, message_id = await _link(gateway, delivered_ago=timedelta(0))
    response = await gateway.http.get(f"/l/{code}", headers={"user-agent": HANDSET_BROWSER})
    assert (response.status_code, response.headers["location"]) == (302, "https://shop.example.com/p")
    clicks, clicked = await _state(gateway, code, message_id)
    assert [c.bot for c in clicks] == ["too_soon"] and clicked is False


@pytest.fixture
def gateway_settings(gateway_settings: Settings) -> Settings:
    """The gateway with an address-hash key of its own."""
    return gateway_settings.model_copy(update={"ip_hash_key": SecretStr("click-key-for-tests")})


async def test_a_persons_click_counts_and_keeps_a_keyed_hash_of_the_address(gateway: Gateway) -> None:
    """A handset's GET a minute after delivery marks the message clicked; its address is stored
    only as HMAC-SHA256 under the gateway's key; a preview fetcher's GET after it is a bot's."""
    code, message_id = await _link(gateway, delivered_ago=timedelta(minutes=1))
    await gateway.http.get(f"/l/{code}", headers={"user-agent": HANDSET_BROWSER})
    await gateway.http.get(f"/l/{code}", headers={"user-agent": "WhatsApp/2.23.20.0 A"})
    clicks, clicked = await _state(gateway, code, message_id)
    assert [c.bot for c in clicks] == [None, "user_agent"] and clicked is True
    expected = hmac.new(b"click-key-for-tests", b"127.0.0.1", hashlib.sha256).hexdigest()[:32]
    assert clicks[0].ip_hash == expected
    assert clicks[0].user_agent == HANDSET_BROWSER and clicks[1].user_agent == "WhatsApp/2.23.20.0 A"


class Signals:
    """A Temporal client that records the signals sent to journeys."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def get_workflow_handle(self, workflow_id: str) -> Any:
        sent = self.sent

        class Handle:
            async def signal(self, name: str, arg: Any) -> None:
                await asyncio.sleep(0)
                sent.append((workflow_id, name))

        return Handle()


async def test_concurrent_first_clicks_publish_and_signal_once(engine: AsyncEngine) -> None:
    """Eight people's requests for one link at once (on PostgreSQL really concurrent, on their own
    connections): every one is recorded, the message is clicked, and exactly one is its first
    click: one ``clicked`` event, one signal to its journey."""
    sessions = session_factory(engine)
    sink = StreamWebhook(name="crm", url="https://crm.example/h", secret=SecretStr("a-secret-of-16-chars"))
    delivered = utcnow() - timedelta(minutes=1)
    message = Message(
        idempotency_key=f"wf-click/{uuid.uuid4().hex}",
        workflow_id="wf-click",
        journey="cart_abandonment",
        step="send:cart_reminder",
        template="cart_reminder",
        customer_id="cust-click",
        category="marketing",
        to="+8613800138000",
        body="hi",
        status="delivered",
        delivered_at=delivered,
        created_at=delivered,
    )
    code = f"C{uuid.uuid4().hex[:7]}"
    async with sessions() as session:
        session.add(message)
        session.add(Link(code=code, message_id=message.id, target_url="https://shop.example.com/p"))
        await session.commit()
    signals = Signals()
    clicks = Clicks(client=cast(Client, signals), sessions=sessions, sinks=[sink])

    targets = await asyncio.gather(
        *(clicks.follow(code, ClickRequest(user_agent=HANDSET_BROWSER)) for _ in range(8))
    )

    assert targets == ["https://shop.example.com/p"] * 8
    async with sessions() as session:
        recorded = (await session.exec(select(Click).where(Click.code == code))).all()
        events = (await session.exec(select(StreamEvent))).all()
        row = await session.get(Message, message.id)
    assert len(recorded) == 8 and row is not None and row.clicked
    assert [event.kind for event in events] == ["clicked"]
    assert signals.sent == [("wf-click", "message")]


async def _delivered(sessions: Any, **fields: Any) -> tuple[Message, str]:
    """A message delivered a minute ago, with one link; returns it and the link's code."""
    delivered = utcnow() - timedelta(minutes=1)
    values: dict[str, Any] = {
        "idempotency_key": f"click/{uuid.uuid4().hex}",
        "workflow_id": "wf-click",
        "journey": "cart_abandonment",
        "step": "send:cart_reminder",
        "template": "cart_reminder",
        "customer_id": "cust-click",
        "category": "marketing",
        "to": "+8613800138000",
        "status": "delivered",
        "delivered_at": delivered,
        "created_at": delivered,
    }
    message = Message(**(values | fields))
    code = f"C{uuid.uuid4().hex[:7]}"
    async with sessions() as session:
        session.add(message)
        session.add(Link(code=code, message_id=message.id, target_url="https://shop.example.com/p"))
        await session.commit()
    return message, code


async def test_a_broadcasts_clicks_are_never_signalled(engine: AsyncEngine) -> None:
    """A person's first click on a broadcast's message marks it clicked and signals no workflow;
    the same click on a journey's message signals its journey once."""
    sessions = session_factory(engine)
    broadcast, broadcast_code = await _delivered(
        sessions, workflow_id="broadcast:b1", broadcast_id="b1", journey="broadcast"
    )
    journey, journey_code = await _delivered(sessions, workflow_id="journey:j1")
    signals = Signals()
    clicks = Clicks(client=cast(Client, signals), sessions=sessions)
    for code in (broadcast_code, journey_code):
        assert (
            await clicks.follow(code, ClickRequest(user_agent=HANDSET_BROWSER))
            == "https://shop.example.com/p"
        )
    async with sessions() as session:
        rows = [await session.get(Message, m.id) for m in (broadcast, journey)]
    assert [r.clicked for r in rows if r is not None] == [True, True]
    assert signals.sent == [("journey:j1", "message")]


async def test_a_bots_request_before_a_persons_in_one_batch_leaves_the_first_click_to_the_person(
    engine: AsyncEngine,
) -> None:
    """A preview fetcher and then a person request one link together (one transaction): the
    person's click is the first, counted and signalled once."""
    sessions = session_factory(engine)
    message, code = await _delivered(sessions)
    signals = Signals()
    clicks = Clicks(client=cast(Client, signals), sessions=sessions)
    await asyncio.gather(
        clicks.follow(code, ClickRequest(user_agent="WhatsApp/2.23.20.0 A")),
        clicks.follow(code, ClickRequest(user_agent=HANDSET_BROWSER)),
    )
    async with sessions() as session:
        recorded = (await session.exec(select(Click).where(Click.code == code).order_by(col(Click.id)))).all()
        row = await session.get(Message, message.id)
    assert [c.bot for c in recorded] == ["user_agent", None]
    assert row is not None and row.clicked
    assert signals.sent == [("wf-click", "message")]


async def test_an_erased_customers_link_is_not_found_and_marks_nothing_clicked(engine: AsyncEngine) -> None:
    """Erasure blanks a link's target: a person's request for it is a 404 (None here), records no
    click, leaves the message unclicked and signals nobody, so funnels count no click after it."""
    sessions = session_factory(engine)
    message, code = await _delivered(sessions, workflow_id="journey:j1")
    async with sessions() as session:
        link = await session.get(Link, code)
        assert link is not None
        link.target_url = ""  # as starter/api/services/erasure.py leaves it
        session.add(link)
        await session.commit()
    signals = Signals()
    clicks = Clicks(client=cast(Client, signals), sessions=sessions)
    assert await clicks.follow(code, ClickRequest(user_agent=HANDSET_BROWSER)) is None
    async with sessions() as session:
        row = await session.get(Message, message.id)
        recorded = (await session.exec(select(Click).where(Click.code == code))).all()
    assert row is not None and row.clicked is False and not recorded and signals.sent == []
