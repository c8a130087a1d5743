"""Short-link requests through the gateway: every one recorded with a keyed hash of its address,
only a person's click counted; a scanner's within a second of delivery is redirected, not counted."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from nudge.settings import Settings
from nudge.store import Click, Link, Message, utcnow
from simulator.carrier import HANDSET_BROWSER
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
