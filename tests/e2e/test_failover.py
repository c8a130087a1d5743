"""End to end: a route whose account is out of balance fails over, and delivers exactly once."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlmodel import col, select

from nudge.models import JourneyResult, MessageStatus
from nudge.routes import DEV_ALIYUN_KEYS
from nudge.settings import Settings
from nudge.store import Message, MessageStatusChange, create_engine, session_factory
from starter.stack import Stack
from tests.e2e.test_cart_journey import _client, _customer_event, _wait_for

pytestmark = pytest.mark.e2e
PRIMARY_KEY = next(iter(DEV_ALIYUN_KEYS))


async def _pay(gw: httpx.AsyncClient, customer: str, phone: str, order: str) -> str:
    await _customer_event(gw, customer, phone, "order_paid", order_id=order, amount="88.00")
    return f"journey:payment_success:{customer}:{order}"


async def test_account_error_fails_over_and_delivers_once(stack: Stack) -> None:
    """Aliyun's primary account answers isv.AMOUNT_NOT_ENOUGH: the route pauses, the message goes
    out once through Tencent, its receipt reaches the journey, and after the pause a probe on the
    healed route closes the breaker again."""
    customer = f"fo-{uuid.uuid4().hex[:6]}"
    phone = f"+86139{uuid.uuid4().int % 10**8:08d}"
    client = await _client(stack)
    engine = create_engine(Settings(state_dir=stack.state_dir).sqlalchemy_url)
    sessions = session_factory(engine)
    try:
        async with (
            httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=30) as gw,
            httpx.AsyncClient(base_url=stack.simulator_url, timeout=30) as sim,
        ):
            fault = {"provider": "aliyun", "account": PRIMARY_KEY, "code": "isv.AMOUNT_NOT_ENOUGH"}
            r = await sim.post("/_sim/config", json={"faults": [fault]})
            assert r.status_code == 200, r.text
            workflow_id = await _pay(gw, customer, phone, "o1")
            result = await client.get_workflow_handle(workflow_id, result_type=JourneyResult).result()

            assert (result.outcome, result.reason) == ("completed", None)
            assert result.messages[0].status is MessageStatus.DELIVERED
            ledger = (await sim.get("/_sim/ledger")).json()
            mine = [e for e in ledger if e["to"] == phone]
            assert [(e["provider"], e["account"]) for e in mine] == [("tencent", "AKIDNudgeDevTencent")]
            async with sessions() as session:
                [message] = (
                    await session.exec(select(Message).where(Message.workflow_id == workflow_id))
                ).all()
            assert (message.route, message.provider, message.status) == ("tencent-cn", "tencent", "delivered")
            assert message.provider_message_id == mine[0]["provider_id"]

            # Heal the account; once the 2 s pause is over, the next send probes Aliyun and stays there.
            await sim.post("/_sim/config", json={"faults": []})

            async def probe_went_to_aliyun() -> bool:
                order = uuid.uuid4().hex[:6]
                second = await _pay(gw, customer, phone, order)
                await client.get_workflow_handle(second, result_type=JourneyResult).result()
                async with sessions() as session:
                    row = (await session.exec(select(Message).where(Message.workflow_id == second))).one()
                return row.route == "aliyun-cn"

            await _wait_for(probe_went_to_aliyun, timeout=30, every=1)
    finally:
        await engine.dispose()


async def test_receipt_that_beats_the_send_answer_still_reaches_the_journey(stack: Stack) -> None:
    """Tencent's receipt arrives before its SendSms answer (the gateway cannot match it yet): it
    is kept, applied when the send is recorded, and the journey completes as delivered."""
    customer = f"rb-{uuid.uuid4().hex[:6]}"
    phone = f"+86137{uuid.uuid4().int % 10**8:08d}"
    client = await _client(stack)
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=30) as gw,
        httpx.AsyncClient(base_url=stack.simulator_url, timeout=30) as sim,
    ):
        fault = {"provider": "aliyun", "account": PRIMARY_KEY, "code": "isv.AMOUNT_NOT_ENOUGH"}
        await sim.post("/_sim/config", json={"faults": [fault], "receipt_reorder_rate": 1.0})
        try:
            workflow_id = await _pay(gw, customer, phone, "o1")
            result = await client.get_workflow_handle(workflow_id, result_type=JourneyResult).result()
        finally:
            await sim.post("/_sim/config", json={"faults": [], "receipt_reorder_rate": 0.0})
    assert (result.outcome, result.messages[0].status) == ("completed", MessageStatus.DELIVERED)
    engine = create_engine(Settings(state_dir=stack.state_dir).sqlalchemy_url)
    try:
        async with session_factory(engine)() as session:
            changes = (
                await session.exec(
                    select(MessageStatusChange)
                    .where(MessageStatusChange.message_id == result.messages[0].message_id)
                    .order_by(col(MessageStatusChange.id))
                )
            ).all()
    finally:
        await engine.dispose()
    # Stored first (unmatched), then the send's answer was recorded and applied it.
    assert [(c.status, c.applied) for c in changes] == [("delivered", True), ("submitted", True)]
