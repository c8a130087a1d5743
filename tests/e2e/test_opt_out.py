"""End to end: a customer replies 退订 through the carrier while their cart journey waits."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from nudge.models import JourneyResult
from starter.stack import Stack
from tests.e2e.test_cart_journey import _client, _customer_event, _wait_for

pytestmark = pytest.mark.e2e


async def test_stop_reply_ends_marketing_and_nothing_more_is_sent(stack: Stack) -> None:
    """The reminder goes out; the customer answers 退订 (Aliyun SmsUp, through the simulator)
    before clicking. The journey exits as opted_out, and their later click earns no coupon."""
    customer = f"oo-{uuid.uuid4().hex[:6]}"
    phone = f"+86136{uuid.uuid4().int % 10**8:08d}"
    client = await _client(stack)
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=30) as gw,
        httpx.AsyncClient(base_url=stack.simulator_url, timeout=30) as sim,
    ):
        await sim.post("/_sim/config", json={"click_numbers": [phone], "click_delay_ms": 2500})
        await _customer_event(
            gw, customer, phone, "cart_abandoned", cart_id="k1", url="https://shop.example.com/cart/k1"
        )

        async def mine() -> list[dict[str, object]]:
            return [e for e in (await sim.get("/_sim/ledger")).json() if e["to"] == phone]

        await _wait_for(mine, timeout=30, every=0.2)
        reply = await sim.post(
            "/_sim/reply", json={"provider": "aliyun", "from": phone, "to": "Nudge", "text": "退订"}
        )
        assert reply.status_code == 200 and reply.json()["status"] == 200, reply.text

        workflow_id = f"journey:cart_abandonment:{customer}:k1"
        result = await client.get_workflow_handle(workflow_id, result_type=JourneyResult).result()
        assert (result.outcome, result.reason) == ("exited", "opted_out")
        await asyncio.sleep(4)  # past the simulated click and the coupon delay
        assert [e["template_code"] for e in await mine()] == ["SMS_480001"]
