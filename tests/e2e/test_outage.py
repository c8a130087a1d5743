"""End to end: the gateway crashes while receipts are on their way; no receipt is lost."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from nudge.models import JourneyResult, MessageStatus
from tests.e2e.conftest import running_stack
from tests.e2e.test_cart_journey import _client, _customer_event, _wait_for

pytestmark = pytest.mark.e2e
MESSAGES = 5


async def test_a_gateway_outage_while_receipts_flow_loses_no_receipt(tmp_path: Path) -> None:
    """Five payment confirmations are sent; the gateway is killed (SIGKILL) before their receipts,
    due 3 s later, can be posted, and started again 6 s later. The simulator redelivers, as the
    providers do: every journey gets its receipt and completes, every message ends delivered."""
    with running_stack(tmp_path / "stack", NUDGE_SIMULATOR_RECEIPT_DELAY_MS="3000") as stack:
        tag = uuid.uuid4().hex[:6]
        customers = [(f"out-{tag}-{i}", f"+86137{uuid.uuid4().int % 10**8:08d}") for i in range(MESSAGES)]
        async with (
            httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=30) as gw,
            httpx.AsyncClient(base_url=stack.simulator_url, timeout=30) as sim,
        ):
            for customer, phone in customers:
                await _customer_event(gw, customer, phone, "order_paid", order_id="o1", amount="5.00")
            numbers = {phone for _, phone in customers}

            async def all_sent() -> bool:
                return (
                    len([e for e in (await sim.get("/_sim/ledger")).json() if e["to"] in numbers]) == MESSAGES
                )

            await _wait_for(all_sent, timeout=60, every=0.05)
        stack.kill_part("gateway")
        await asyncio.sleep(6)  # the receipts come due and are refused: nothing listens
        stack.start_parts("gateway")

        client = await _client(stack)
        for customer, _ in customers:
            handle = client.get_workflow_handle(
                f"journey:payment_success:{customer}:o1", result_type=JourneyResult
            )
            result = await asyncio.wait_for(handle.result(), timeout=90)
            assert result.outcome == "completed", (customer, result)
            assert [m.status for m in result.messages] == [MessageStatus.DELIVERED], result
        log = (stack.state_dir / "logs" / "simulator.log").read_text()
        assert "receipt_redelivered" in log, "the receipts were not refused: the outage proved nothing"
