"""The worker's own scheduled work, run as workflows so that ops see each run in the Temporal UI.

``ReconcileReceipts`` runs from the schedule ``nudge-receipt-reconciler`` that the worker keeps in
line with its settings (``ensure_schedules`` in ``worker.py``): each run sweeps the messages whose
receipt never came, a batch at a time, until none is left or it has done ``MAX_PASSES``.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from nudge.contracts import ReceiptSweep, SweepReport, reconcile_receipts

RECEIPT_SCHEDULE_ID = "nudge-receipt-reconciler"
MAX_PASSES = 20
"""Batches per run; a backlog bigger than this goes on in the next scheduled run."""
SWEEP_TIMEOUT = timedelta(minutes=10)
SWEEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=1), maximum_attempts=3
)


@workflow.defn(name="ReconcileReceipts")
class ReconcileReceipts:
    @workflow.run
    async def run(self, sweep: ReceiptSweep) -> SweepReport:
        total = SweepReport()
        started = workflow.now()
        for _ in range(MAX_PASSES):
            report = await workflow.execute_activity(
                reconcile_receipts,
                sweep,
                start_to_close_timeout=SWEEP_TIMEOUT,
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=SWEEP_RETRY,
            )
            total.checked += report.checked
            total.reconciled += report.reconciled
            total.failed += report.failed
            total.more = report.more
            # A run that has lasted ``after`` would meet its own first messages again.
            if not report.more or workflow.now() - started >= sweep.after:
                break
        return total
