"""End to end: the gateway crashes while receipts are on their way; no message is left in doubt.

Either the simulator redelivers the receipts once the gateway is back, as the providers do, or
(when it gives up at once) the worker's receipt sweep asks the providers' status APIs."""

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


RECOVERY: dict[str, tuple[dict[str, str], dict[str, float]]] = {
    "redelivered": ({}, {}),
    # The carrier posts each receipt once; the sweep asks about messages 3 s without a final status.
    "reconciled": (
        {"NUDGE_RECEIPT_RECONCILE_AFTER": "PT3S", "NUDGE_RECEIPT_RECONCILE_EVERY": "PT1S"},
        {"receipt_retry_s": 0},
    ),
}
EVIDENCE = {
    "redelivered": ("simulator", "receipt_redelivered"),
    "reconciled": ("worker", "receipts_reconciled"),
}


@pytest.mark.parametrize("recovery", sorted(RECOVERY))
async def test_a_gateway_outage_while_receipts_flow_leaves_no_message_in_doubt(
    tmp_path: Path, recovery: str
) -> None:
    """Five payment confirmations are sent; the gateway is killed (SIGKILL) before their receipts,
    due 3 s later, can be posted, and started again 6 s later. The simulator redelivers, or the
    worker's sweep looks each message up in the provider's status API: every journey learns its
    message was delivered and completes."""
    env, carrier = RECOVERY[recovery]
    with running_stack(tmp_path / "stack", NUDGE_SIMULATOR_RECEIPT_DELAY_MS="3000", **env) as stack:
        tag = uuid.uuid4().hex[:6]
        customers = [(f"out-{tag}-{i}", f"+86137{uuid.uuid4().int % 10**8:08d}") for i in range(MESSAGES)]
        async with (
            httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=30) as gw,
            httpx.AsyncClient(base_url=stack.simulator_url, timeout=30) as sim,
        ):
            (await sim.post("/_sim/config", json=carrier)).raise_for_status()
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
        part, evidence = EVIDENCE[recovery]
        log = (stack.state_dir / "logs" / f"{part}.log").read_text()
        assert evidence in log, f"no {evidence} in the {part}'s log: the outage proved nothing"
        if recovery == "reconciled":
            assert "receipt_redelivered" not in (stack.state_dir / "logs" / "simulator.log").read_text()
