"""End to end: the worker keeps its Temporal schedule (the receipt sweep) in line with its
settings when it starts, and leaves an operator's pause alone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import ScheduleDescription
from temporalio.service import RPCError

from tests.e2e.conftest import running_stack
from tests.e2e.test_cart_journey import _client, _wait_for
from workflows.maintenance import RECEIPT_SCHEDULE_ID

pytestmark = pytest.mark.e2e


async def test_a_restarted_worker_updates_the_sweep_schedule_and_keeps_its_pause(tmp_path: Path) -> None:
    """The schedule runs every NUDGE_RECEIPT_RECONCILE_EVERY; an operator pauses it; the worker
    restarts with another interval: the interval changes, the pause and its note stay."""
    with running_stack(tmp_path / "stack", NUDGE_RECEIPT_RECONCILE_EVERY="PT30S") as stack:
        handle = (await _client(stack)).get_schedule_handle(RECEIPT_SCHEDULE_ID)

        async def described(every: timedelta) -> ScheduleDescription | None:
            try:
                found = await handle.describe()
            except RPCError:
                return None  # the worker has not made it yet
            return found if found.schedule.spec.intervals[0].every == every else None

        await _wait_for(lambda: described(timedelta(seconds=30)), timeout=60)
        await handle.pause(note="paused by ops during a provider incident")

        stack.kill_part("worker")
        stack.env_overrides["NUDGE_RECEIPT_RECONCILE_EVERY"] = "PT45S"
        stack.start_parts("worker")

        updated = await _wait_for(lambda: described(timedelta(seconds=45)), timeout=60)
        assert updated.schedule.state.paused, "the restart un-paused the schedule"
        assert updated.schedule.state.note == "paused by ops during a provider incident"
        assert updated.schedule.action.workflow == "ReconcileReceipts"
