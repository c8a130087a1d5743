"""Replay: journey code must stay compatible with histories already recorded.

``histories/*.json`` were recorded from real runs (``python -m tests.workflows.record_histories``).
A change to a journey that would break a live run fails here; guard it with ``workflow.patched``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from starter.testing import JourneyTester
from workflows import JOURNEYS, CartAbandonment

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _replayer() -> Replayer:
    return Replayer(workflows=list(JOURNEYS), data_converter=pydantic_data_converter)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay_recorded_history_is_deterministic(path: Path) -> None:
    """Each recorded journey history replays without a nondeterminism error."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())  # noqa: ASYNC240
    await _replayer().replay_workflow(history)


def test_replay_recorded_histories_exist() -> None:
    """The recorded histories are present, so the replay test above is not vacuous."""
    assert {p.stem.split("__")[0] for p in HISTORIES} >= {"cart_abandonment", "onboarding", "payment_success"}


async def test_replay_fresh_run_replays(journeys: JourneyTester) -> None:
    """A run recorded just now replays with the current code (goal, click and sends included)."""
    run = await journeys.start(CartAbandonment, customer="r1", cart_id="k1")
    await run.advance(hours=1)
    await run.click(run.sent[-1])
    await run.advance(hours=3)
    await run.event("order_paid")
    await run.result()
    history = await run.handle.fetch_history()
    await _replayer().replay_workflow(history)
