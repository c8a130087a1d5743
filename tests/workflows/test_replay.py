"""Replay: journey code must stay compatible with histories already recorded.

``histories/*.json`` were recorded from real runs (``python -m tests.workflows.record_histories``).
A change to a journey that would break a live run fails here; guard it with ``workflow.patched``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from nudge.codec import new_key
from nudge.temporal import sealed_converter
from starter.testing import JourneyTester
from tests.workflows.record_histories import RECORDING_KEYS
from tests.workflows.sample_journeys import SplitsCopy
from workflows import JOURNEYS, CartAbandonment
from workflows.broadcast import Broadcast

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _replayer(keys: str | None = None) -> Replayer:
    """A replayer with Nudge's converter: ``keys`` open sealed histories (by default the recorder's);
    the histories recorded before the codec hold plain payloads, which pass through any key."""
    return Replayer(
        workflows=[*JOURNEYS, SplitsCopy, Broadcast], data_converter=sealed_converter(keys or RECORDING_KEYS)
    )


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay_recorded_history_is_deterministic(path: Path) -> None:
    """Each recorded journey history replays without a nondeterminism error."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())  # noqa: ASYNC240
    await _replayer().replay_workflow(history)


def test_replay_recorded_histories_exist() -> None:
    """The recorded histories are present, so the replay test above is not vacuous."""
    assert {p.stem.split("__")[0] for p in HISTORIES} >= {"cart_abandonment", "onboarding", "payment_success"}


async def _fresh_history(journeys: JourneyTester) -> WorkflowHistory:
    run = await journeys.start(CartAbandonment, customer="r1", cart_id="k1")
    await run.advance(hours=1)
    await run.click(run.sent[-1])
    await run.advance(hours=3)
    await run.event("order_paid")
    await run.result()
    return await run.handle.fetch_history()


async def test_replay_fresh_run_replays(journeys: JourneyTester, codec_keys: str) -> None:
    """A run recorded just now (its payloads sealed) replays with the current code (goal, click and
    sends included)."""
    await _replayer(codec_keys).replay_workflow(await _fresh_history(journeys))


async def test_replay_after_key_rotation_opens_history_sealed_with_the_old_key(
    journeys: JourneyTester, codec_keys: str
) -> None:
    """Rotation: with a new key listed first and the old one after it, a history sealed with the
    old key replays; with the old key dropped, replay fails loudly, naming the missing key."""
    history = await _fresh_history(journeys)
    newer = new_key("test-2")
    await _replayer(f"{newer},{codec_keys}").replay_workflow(history)
    # The failure is sealed too (its message with it); its type names what is missing.
    with pytest.raises(RuntimeError, match="MissingCodecKey"):
        await _replayer(newer).replay_workflow(history)
