"""End to end: customers answer STOP until the complaint-rate breaker opens; sends pause, the alert
webhook hears of it, and ``nudge resume`` lets sends go again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from nudge.models import JourneyResult, SendDecision
from starter.cli import app
from starter.stack import Stack
from tests.e2e.conftest import running_stack
from tests.e2e.test_cart_journey import _client, _customer_event, _wait_for
from tests.inbox import Inbox
from tests.servers import serve
from workflows import CartAbandonment

pytestmark = pytest.mark.e2e
CACHE_TTL = 1.2
"""The worker reads pauses at most once a second: a pause or a resume takes effect within this."""


@pytest.fixture(scope="module")
async def alerts() -> AsyncIterator[Inbox]:
    """The operator's alert webhook, on a free loopback port."""
    inbox = Inbox()
    async with serve(inbox.app) as url:
        inbox.url = f"{url}/alerts"
        yield inbox


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, alerts: Inbox) -> Iterator[Stack]:
    """The real stack with a breaker that opens above 1 complaint in 2, from 4 messages sent."""
    with running_stack(
        tmp_path_factory.mktemp("stack"),
        NUDGE_COMPLAINT_MIN_VOLUME="4",
        NUDGE_COMPLAINT_THRESHOLD="0.5",
        NUDGE_ALERT_WEBHOOK_URL=alerts.url,
    ) as running:
        yield running


async def nudge(stack: Stack, *args: str) -> Result:
    """The ``nudge`` CLI's entry point, in a thread (it makes blocking HTTP calls), with the
    stack's local admin key and its state dir (where the codec key is), as `make run` users have."""
    env = {"NUDGE_API_KEY": stack.api_key, "NUDGE_STATE_DIR": str(stack.state_dir)}  # keys, codec key
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def test_stop_replies_open_the_breaker_then_resume_lets_sends_go(stack: Stack, alerts: Inbox) -> None:
    """4 cart reminders reach the carrier; 3 customers reply 退订 (75% > 50%): the template pauses,
    the alert reaches the webhook, the next reminder is blocked paused:template=cart_reminder and
    never reaches the carrier; `nudge resume` of every paused scope, and the next one goes."""
    tag = uuid.uuid4().hex[:6]
    phones = [f"+86135{uuid.uuid4().int % 10**8:08d}" for _ in range(6)]
    url = "https://shop.example.com/cart/k1"
    gateway = ["--gateway", stack.gateway_url]
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=30) as gw,
        httpx.AsyncClient(base_url=stack.simulator_url, timeout=30) as sim,
    ):

        async def ledger_to(numbers: list[str]) -> list[dict[str, Any]]:
            return [e for e in (await sim.get("/_sim/ledger")).json() if e["to"] in numbers]

        for i, phone in enumerate(phones[:4]):
            await _customer_event(gw, f"cb-{tag}-{i}", phone, "cart_abandoned", cart_id="k1", url=url)

        async def all_four() -> bool:
            return len(await ledger_to(phones[:4])) == 4

        await _wait_for(all_four, timeout=30)
        for phone in phones[:3]:
            reply = await sim.post(
                "/_sim/reply", json={"provider": "aliyun", "from": phone, "to": "Nudge", "text": "退订"}
            )
            assert reply.status_code == 200 and reply.json()["status"] == 200, reply.text

        # The third reply's webhook call opened the breaker before it answered.
        pauses = (await gw.get("/v1/pauses")).json()
        template = next(p for p in pauses if p["scope"] == "template")
        assert (template["value"], template["source"], template["complaints"], template["sent"]) == (
            "cart_reminder",
            "auto",
            3,
            4,
        )
        received = await alerts.wait_for(len(pauses))
        alert = next(a for a in received if a["scope"] == "template")
        assert (alert["alert"], alert["value"], alert["rate"], alert["threshold"]) == (
            "sends_paused",
            "cart_reminder",
            0.75,
            0.5,
        )
        listed = await nudge(stack, "pauses", *gateway)
        assert listed.exit_code == 0, listed.output
        assert "cart_reminder" in listed.output and "3/4 (75.0%)" in listed.output

        await asyncio.sleep(CACHE_TTL)
        held = f"cb-{tag}-held"
        await _customer_event(gw, held, phones[4], "cart_abandoned", cart_id="k1", url=url)
        client = await _client(stack)
        handle = client.get_workflow_handle(
            CartAbandonment.workflow_id(held, "k1"), result_type=JourneyResult
        )
        result = await asyncio.wait_for(handle.result(), timeout=30)
        assert [(m.decision, m.reason) for m in result.messages] == [
            (SendDecision.BLOCKED, "paused:template=cart_reminder")
        ]
        journeys = await nudge(stack, "journeys", held, "--temporal", stack.temporal_address)
        assert "cart_reminder: blocked" in journeys.output, journeys.output
        assert "paused:template=cart_reminder" in journeys.output, journeys.output
        assert await ledger_to(phones[4:]) == []

        for paused in pauses:
            resumed = await nudge(
                stack, "resume", f"--{paused['scope']}", paused["value"], "--reason", "e2e", *gateway
            )
            assert resumed.exit_code == 0, resumed.output
        assert (await gw.get("/v1/pauses")).json() == []

        await asyncio.sleep(CACHE_TTL)
        await _customer_event(gw, f"cb-{tag}-after", phones[5], "cart_abandoned", cart_id="k1", url=url)
        [after] = await _wait_for(lambda: ledger_to(phones[5:]), timeout=30)
        assert after["template_code"] == "SMS_480001"
        assert await ledger_to(phones[4:5]) == []
