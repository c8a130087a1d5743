"""Receipt signals in a journey follow the same order rules as the store: forward only, and of two
final statuses the first one to arrive stays.

To make signals arrive together, deterministically, they are sent while no worker polls the task
queue: the next workflow task then carries them all, in order. Before the first task they reach
the journey ahead of its send's result (the "early" record that ``send_sms`` merges); after it,
they update the record of a message already sent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from nudge.models import (
    Event,
    JourneyInput,
    JourneyResult,
    JourneyState,
    MessageStatus,
    MessageUpdate,
    SendDecision,
    SendRequest,
    SendResult,
)
from starter.testing import FakeCarrier
from workflows import JOURNEYS, PaymentSuccess

S = MessageStatus
MESSAGE_ID = "m1"
"""The id FakeCarrier gives the first message it sends (each test has a carrier of its own)."""

# (receipts signalled before the send's result, the status the journey ends with, its outcome)
EARLY_ORDERINGS: list[tuple[list[MessageStatus], MessageStatus, tuple[str, str | None]]] = [
    ([S.DELIVERED, S.FAILED], S.DELIVERED, ("completed", None)),
    ([S.FAILED, S.DELIVERED], S.FAILED, ("exited", "undelivered:failed")),
    ([S.UNDELIVERED, S.DELIVERED], S.UNDELIVERED, ("exited", "undelivered:undelivered")),
    ([S.SENT, S.DELIVERED], S.DELIVERED, ("completed", None)),
    ([S.DELIVERED, S.SUBMITTED], S.DELIVERED, ("completed", None)),
    ([S.DELIVERED, S.SENT], S.DELIVERED, ("completed", None)),
]


def _worker(env: WorkflowEnvironment, task_queue: str, activities: Sequence[Any]) -> Worker:
    # No workflow cache: each task replays from history, so stopping this worker leaves no sticky
    # queue behind for the server to wait on.
    return Worker(
        env.client,
        task_queue=task_queue,
        workflows=list(JOURNEYS),
        activities=list(activities),
        max_cached_workflows=0,
    )


async def _start_payment(env: WorkflowEnvironment, task_queue: str) -> WorkflowHandle[Any, JourneyResult]:
    """Start a payment confirmation as the gateway would; no worker has it yet."""
    customer = f"rs-{uuid.uuid4().hex[:10]}"
    trigger = Event(
        event_id=uuid.uuid4().hex,
        customer_id=customer,
        name=PaymentSuccess.trigger,
        properties={"order_id": "o-1", "amount": "9.90"},
        occurred_at=datetime.now(UTC),
    )
    return await env.client.start_workflow(
        PaymentSuccess.__name__,
        JourneyInput(customer_id=customer, key="o-1"),
        id=PaymentSuccess.workflow_id(customer, "o-1"),
        task_queue=task_queue,
        start_signal="event",
        start_signal_args=[trigger],
        result_type=JourneyResult,
    )


async def _signal_receipts(handle: WorkflowHandle[Any, JourneyResult], receipts: list[MessageStatus]) -> None:
    for status in receipts:
        await handle.signal("message", MessageUpdate(message_id=MESSAGE_ID, kind="receipt", status=status))


@pytest.mark.parametrize(
    ("receipts", "final", "outcome"),
    EARLY_ORDERINGS,
    ids=["-".join(r.value for r in receipts) for receipts, _, _ in EARLY_ORDERINGS],
)
async def test_receipt_signals_before_the_send_result_keep_the_first_final_status(
    env: WorkflowEnvironment,
    receipts: list[MessageStatus],
    final: MessageStatus,
    outcome: tuple[str, str | None],
) -> None:
    """Receipts that reach the journey before its send's result leave exactly the expected status:
    failed after delivered stays delivered, and a late submitted or sent does not move it back."""
    carrier = FakeCarrier()
    task_queue = f"receipt-signals-{uuid.uuid4().hex[:12]}"
    handle = await _start_payment(env, task_queue)
    await _signal_receipts(handle, receipts)
    async with _worker(env, task_queue, [carrier.send_message, carrier.get_profile]):
        result = await handle.result()
    assert [r.template for r in carrier.requests] == ["payment_success"]
    assert result.messages[0].status is final
    assert (result.outcome, result.reason) == outcome


async def test_receipt_signals_after_the_send_keep_the_first_final_status(
    env: WorkflowEnvironment,
) -> None:
    """Delivered then failed, arriving together while the journey waits for its receipt, ends
    delivered: the second final status does not replace the first."""
    carrier = FakeCarrier()
    task_queue = f"receipt-signals-{uuid.uuid4().hex[:12]}"
    handle = await _start_payment(env, task_queue)
    async with _worker(env, task_queue, [carrier.send_message, carrier.get_profile]):
        for _ in range(200):
            state = await handle.query("state", result_type=JourneyState)
            if state.step == "wait:receipt:payment_success":
                break
            await asyncio.sleep(0.05)
        assert state.step == "wait:receipt:payment_success"
        assert state.messages[0].status is S.SUBMITTED
    await _signal_receipts(handle, [S.DELIVERED, S.FAILED])
    async with _worker(env, task_queue, [carrier.send_message, carrier.get_profile]):
        result = await handle.result()
    assert result.messages[0].status is S.DELIVERED
    assert (result.outcome, result.reason) == ("completed", None)


@activity.defn(name="send_message")
async def _send_already_delivered(request: SendRequest) -> SendResult:
    """A send whose result already says delivered: the store had attached an early receipt."""
    return SendResult(
        message_id=MESSAGE_ID, decision=SendDecision.SENT, provider="fake", status=MessageStatus.DELIVERED
    )


@pytest.mark.parametrize(("early", "final"), [(S.FAILED, S.DELIVERED), (S.SENT, S.DELIVERED)])
async def test_early_receipt_signal_does_not_replace_a_final_send_result(
    env: WorkflowEnvironment, early: MessageStatus, final: MessageStatus
) -> None:
    """A send result that is already delivered keeps that status over a failed (or sent) receipt
    signalled before the result came back."""
    carrier = FakeCarrier()
    task_queue = f"receipt-signals-{uuid.uuid4().hex[:12]}"
    handle = await _start_payment(env, task_queue)
    await _signal_receipts(handle, [early])
    async with _worker(env, task_queue, [_send_already_delivered, carrier.get_profile]):
        result = await handle.result()
    assert result.messages[0].status is final
    assert (result.outcome, result.reason) == ("completed", None)
