"""``ReconcileReceipts``, the receipt sweep's workflow, on the time-skipping server with a stand-in
for its activity: it sweeps batch after batch while one says more is left, sums what they did,
stops at ``MAX_PASSES``, and its recorded history replays (``histories/maintenance/``).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from nudge.contracts import ReceiptSweep, SweepReport
from nudge.temporal import sealed_converter
from tests.workflows.record_histories import RECORDING_KEYS
from workflows.maintenance import MAX_PASSES, ReconcileReceipts

HISTORY = Path(__file__).parent / "histories" / "maintenance" / "reconcile_receipts__three_passes.json"
"""A fixed codec key for the recorded history (a test's key is random), so that it replays."""
SWEEP = ReceiptSweep(after=timedelta(minutes=10), within=timedelta(hours=72), limit=2)


class Batches:
    """``reconcile_receipts`` as the worker registers it, answering from a script of reports."""

    def __init__(self, reports: list[SweepReport]) -> None:
        self.reports = reports
        self.asked: list[ReceiptSweep] = []

    @activity.defn(name="reconcile_receipts")
    async def reconcile_receipts(self, sweep: ReceiptSweep) -> SweepReport:
        self.asked.append(sweep)
        return self.reports[min(len(self.asked), len(self.reports)) - 1]


async def sweep_with(env: WorkflowEnvironment, batches: Batches) -> tuple[SweepReport, WorkflowHistory]:
    queue = f"maintenance-{uuid.uuid4().hex[:8]}"
    client = Client(
        env.client.service_client,
        namespace=env.client.namespace,
        data_converter=sealed_converter(RECORDING_KEYS),
    )
    async with Worker(
        client, task_queue=queue, workflows=[ReconcileReceipts], activities=[batches.reconcile_receipts]
    ):
        handle = await client.start_workflow(
            ReconcileReceipts.run, SWEEP, id=f"sweep-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        return await handle.result(), await handle.fetch_history()


async def test_a_sweep_goes_on_while_a_batch_leaves_more_and_sums_the_batches(
    env: WorkflowEnvironment,
) -> None:
    """Two full batches and a last one: three passes, each asked with the sweep's own bounds."""
    batches = Batches(
        [
            SweepReport(checked=2, reconciled=2, more=True),
            SweepReport(checked=2, reconciled=1, failed=1, more=True),
            SweepReport(checked=1, reconciled=1),
        ]
    )
    result, history = await sweep_with(env, batches)
    assert result == SweepReport(checked=5, reconciled=4, failed=1, more=False)
    assert batches.asked == [SWEEP] * 3
    if not HISTORY.exists():  # recorded once; kept so that later changes must replay it
        HISTORY.write_text(history.to_json())  # noqa: ASYNC240


async def test_a_backlog_bigger_than_the_passes_is_left_for_the_next_run(env: WorkflowEnvironment) -> None:
    """Every batch full: the run stops after MAX_PASSES and says more is left."""
    result, _ = await sweep_with(env, Batches([SweepReport(checked=2, reconciled=2, more=True)]))
    assert result == SweepReport(checked=2 * MAX_PASSES, reconciled=2 * MAX_PASSES, more=True)


async def test_the_recorded_sweep_replays() -> None:
    """The committed history of a three-pass sweep replays with today's workflow code."""
    if not HISTORY.exists():
        pytest.fail(f"{HISTORY.name} is missing: run this module once to record it, and commit it")
    history = WorkflowHistory.from_json("sweep", HISTORY.read_text())  # noqa: ASYNC240
    replayer = Replayer(workflows=[ReconcileReceipts], data_converter=sealed_converter(RECORDING_KEYS))
    await replayer.replay_workflow(history)
