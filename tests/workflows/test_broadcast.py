"""``Broadcast`` on the time-skipping server, with the four activities faked over an audience in
memory (``broadcast_fakes.py``): paging covers every recipient once, continue-as-new at the
history bound keeps the progress, pause, resume and cancel answer once they took effect,
deferred recipients go when due (local-time waves, one per zone), the deadline expires the rest,
``--rate`` paces, throttling narrows the window, failures stop it with a reason, and a scheduled
run has a broadcast id of its own. The pure parts (window, tally, ids) are tested here too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from nudge.broadcasts import (
    BatchRequest,
    BroadcastSpec,
    BroadcastState,
    Outcome,
    Progress,
    broadcast_workflow_id,
)
from nudge.contracts import CANCEL, PAUSE, PROGRESS, RESUME, SA_BROADCAST
from nudge.temporal import sealed_converter
from starter.testing import time_skipping_environment
from tests.workflows.broadcast_fakes import FakeAudience
from tests.workflows.record_histories import RECORDING_KEYS
from workflows.broadcast import Broadcast
from workflows.broadcast.ids import SCHEDULE_NAME_MAX, run_broadcast_id
from workflows.broadcast.policies import HISTORY_BOUND
from workflows.broadcast.tally import add_report
from workflows.broadcast.window import Window

HISTORY = Path(__file__).parent / "histories" / "broadcast__deferred_then_swept.json"


@pytest.fixture
async def env(codec_keys: str) -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of each test's own (half a second to start). Sharing the session's,
    two of these tests (hours or a day of waves) sometimes waited, idle, for a time skip that never
    came until their timeout, under pytest-xdist's order of files: whatever an earlier test left on
    a shared server, none is left here."""
    async with time_skipping_environment(codec_keys=codec_keys) as environment:
        yield environment


@dataclass
class Broadcasts:
    """A worker running ``Broadcast`` against ``audience`` on a task queue of its own."""

    env: WorkflowEnvironment
    client: Client
    audience: FakeAudience
    task_queue: str
    handles: list[WorkflowHandle[Any, Progress]] = field(default_factory=list)

    async def start(self, workflow_id: str | None = None, **spec: Any) -> WorkflowHandle[Any, Progress]:
        spec.setdefault("broadcast_id", f"b-{uuid.uuid4().hex[:8]}")
        spec.setdefault("audience", self.audience.name)
        spec.setdefault("template", "spring_sale")
        broadcast = BroadcastSpec(**spec)
        handle = await self.client.start_workflow(
            Broadcast.run,
            broadcast,
            id=workflow_id or broadcast_workflow_id(broadcast.broadcast_id),
            task_queue=self.task_queue,
        )
        self.handles.append(handle)
        return handle

    async def until(self, condition: Any, *, seconds: float = 30) -> None:
        """Wait (in real time) until ``condition()`` holds."""
        for _ in range(int(seconds / 0.02)):
            if condition():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the condition never held")


@asynccontextmanager
async def broadcasts_on(
    env: WorkflowEnvironment, audience: FakeAudience, *, keys: str | None = None
) -> AsyncIterator[Broadcasts]:
    client = env.client
    if keys is not None:  # the recorded history's fixed key; the interceptors that skip time kept
        config = env.client.config()
        config["data_converter"] = sealed_converter(keys)
        client = Client(**config)
    audience.clock = env.get_current_time
    queue = f"broadcast-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[Broadcast], activities=audience.activities):
        broadcasts = Broadcasts(env, client, audience, queue)
        try:
            yield broadcasts
        finally:
            # A run left waiting would hold the shared test server's skipped time back.
            for handle in broadcasts.handles:
                with suppress(RPCError):
                    await handle.terminate("test finished")


async def refusal(handle: WorkflowHandle[Any, Progress], update: str) -> str:
    """The reason the update was refused (its validator's message)."""
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(update, result_type=Progress)
    return str(refused.value.cause)


def counts(progress: Progress) -> dict[Outcome, int]:
    return {outcome: n for outcome, n in progress.counts.items() if n}


async def test_paging_sends_every_recipient_once_in_disjoint_batches(env: WorkflowEnvironment) -> None:
    """250 customers in batches of 10 with 4 in flight: each batch is the next (after, upto] range,
    every customer is sent exactly once, the suppressed and unconsented none, and the progress
    counts each of them once."""
    audience = FakeAudience(250, suppressed={"c00003", "c00100"}, unconsented={"c00249"})
    async with broadcasts_on(env, audience) as broadcasts:
        handle = await broadcasts.start(batch_size=10, window=4)
        progress = await handle.result()
    ranges = sorted(((b.after, b.upto) for b in audience.batches), key=lambda r: r[1])
    assert len(ranges) == 25 and ranges[0] == (None, "c00009") and ranges[-1] == ("c00239", "c00249")
    assert all(earlier[1] == later[0] for earlier, later in zip(ranges, ranges[1:], strict=False))
    sent = audience.sent_to(progress.broadcast_id)
    assert set(sent) == set(audience.ids) - {"c00003", "c00100", "c00249"} and set(sent.values()) == {1}
    assert counts(progress) == {Outcome.SENT: 247, Outcome.SUPPRESSED: 2, Outcome.NO_CONSENT: 1}
    assert (progress.state, progress.total, progress.processed, progress.delivered) == (
        BroadcastState.DONE,
        250,
        250,
        247,
    )
    assert progress.finished_at is not None and audience.most_in_flight <= 4


async def test_an_unknown_audience_fails_the_broadcast_with_the_reason(env: WorkflowEnvironment) -> None:
    """The count's NotFound is permanent: the broadcast fails at once, naming the audience, and
    sends nothing."""
    audience = FakeAudience(10)
    async with broadcasts_on(env, audience) as broadcasts:
        handle = await broadcasts.start(audience="nobody")
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert "no audience named 'nobody'" in str(failed.value.cause)
    assert isinstance(failed.value.cause, ApplicationError) and failed.value.cause.type == "NotFound"
    assert audience.batches == []


async def test_a_batch_that_fails_twice_is_retried_and_counted_once(env: WorkflowEnvironment) -> None:
    """A batch whose first two attempts fail (a store away for a moment) is retried; its
    recipients are sent and counted once."""
    audience = FakeAudience(30)
    audience.fail = lambda request, attempt: (
        ApplicationError("the store is away") if request.upto == "c00019" and attempt <= 2 else None
    )
    async with broadcasts_on(env, audience) as broadcasts:
        progress = await (await broadcasts.start(batch_size=10)).result()
    assert [b.upto for b in audience.batches].count("c00019") == 3
    assert counts(progress) == {Outcome.SENT: 30} and set(
        audience.sent_to(progress.broadcast_id).values()
    ) == {1}


async def test_a_permanent_batch_failure_stops_the_broadcast_with_the_reason(
    env: WorkflowEnvironment,
) -> None:
    """A template that cannot render fails its batch for good (one attempt: the retry policy names
    the error type permanent): no new batch starts, whoever waits expires (``failed``), and the
    broadcast fails naming the activity and the reason."""
    audience = FakeAudience(100)
    audience.fail = lambda request, attempt: (  # not marked non-retryable: the retry policy knows the type
        ApplicationError("template spring_sale has no ${code}", type="TemplateError")
        if request.upto == "c00029"
        else None
    )
    async with broadcasts_on(env, audience) as broadcasts:
        handle = await broadcasts.start(batch_size=10, window=1)
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), timeout=60)
    assert "send_broadcast_batch failed: template spring_sale has no ${code}" in str(failed.value.cause)
    assert [b.upto for b in audience.batches] == ["c00009", "c00019", "c00029"]
    assert [e.reason for e in audience.expired] == ["failed"]


async def test_continue_as_new_at_the_history_bound_keeps_the_progress(env: WorkflowEnvironment) -> None:
    """600 recipients one per batch cross the history bound: the broadcast continues as new (more
    than one run sent batches), no run's history passes the bound by more than the draining
    window, and the final progress still counts every recipient once."""
    audience = FakeAudience(600)
    async with broadcasts_on(env, audience) as broadcasts:
        handle = await broadcasts.start(batch_size=1, window=8)
        progress = await asyncio.wait_for(handle.result(), timeout=120)
        runs = list(dict.fromkeys(audience.batch_runs))
        lengths = [
            len((await broadcasts.client.get_workflow_handle(handle.id, run_id=run).fetch_history()).events)
            for run in runs
        ]
    assert len(runs) >= 2, lengths
    assert max(lengths) <= HISTORY_BOUND + 8 * 8 + 50, lengths
    assert counts(progress) == {Outcome.SENT: 600} and progress.total == 600
    assert (
        set(audience.sent_to(progress.broadcast_id).values()) == {1}
        and len(audience.sent_to(progress.broadcast_id)) == 600
    )
    assert len(audience.batches) == 600  # no batch sent twice across the runs


async def test_pause_answers_only_after_the_batches_in_flight_finish(env: WorkflowEnvironment) -> None:
    """With four batches blocked in flight, pause does not answer until they are released; then no
    batch starts until resume, and the broadcast finishes with everyone sent once. A second pause
    is refused with the reason, and so is a resume of a running broadcast."""
    hold = asyncio.Event()
    audience = FakeAudience(100, hold=hold)
    async with broadcasts_on(env, audience) as broadcasts:
        handle = await broadcasts.start(batch_size=10, window=4)
        await broadcasts.until(lambda: audience.in_flight == 4)
        pausing = asyncio.create_task(handle.execute_update(PAUSE, result_type=Progress))
        await asyncio.sleep(0.5)
        assert not pausing.done(), "pause answered with batches still in flight"
        hold.set()
        paused = await pausing
        assert paused.state is BroadcastState.PAUSED and audience.in_flight == 0
        assert counts(paused) == {Outcome.SENT: 40}
        assert "is paused already" in await refusal(handle, PAUSE)
        await asyncio.sleep(0.5)
        assert len(audience.batches) == 4, "a batch started while paused"
        assert (await PROGRESS.ask(handle)).state is BroadcastState.PAUSED
        resumed = await handle.execute_update(RESUME, result_type=Progress)
        assert resumed.state is BroadcastState.RUNNING
        assert "is not paused" in await refusal(handle, RESUME)
        progress = await handle.result()
    assert counts(progress) == {Outcome.SENT: 100} and len(audience.batches) == 10


async def test_cancel_waits_for_the_batches_in_flight_then_expires_whoever_waits(
    env: WorkflowEnvironment,
) -> None:
    """Cancel answers after the blocked batches finish and the waiting recipients expired
    (``cancelled``); nothing more is sent, the run ends cancelled, and a second cancel is refused."""
    hold = asyncio.Event()
    audience = FakeAudience(200, hold=hold)
    audience.due = lambda customer, request: (
        request.started_at + timedelta(hours=2) if customer < "c00010" else None
    )
    async with broadcasts_on(env, audience) as broadcasts:
        handle = await broadcasts.start(batch_size=10, window=3)
        await broadcasts.until(lambda: audience.in_flight == 3)
        cancelling = asyncio.create_task(handle.execute_update(CANCEL, result_type=Progress))
        await asyncio.sleep(0.5)
        assert not cancelling.done()
        hold.set()
        cancelled = await cancelling
        progress = await handle.result()
        with pytest.raises(Exception):  # noqa: B017 - closed: the server refuses any update
            await handle.execute_update(CANCEL, result_type=Progress)
    assert cancelled.state is progress.state is BroadcastState.CANCELLED
    assert counts(progress) == {Outcome.SENT: 20, Outcome.EXPIRED: 10}
    assert [e.reason for e in audience.expired] == ["cancelled"] and len(audience.batches) == 3


async def test_deferred_recipients_are_swept_when_they_are_due(env: WorkflowEnvironment) -> None:
    """Every fifth customer is deferred three hours (quiet hours): pass 0 sends the others and the
    broadcast waits; pass 1 at the three hours sends the deferred, each once."""
    audience = FakeAudience(50)
    audience.due = lambda c, request: request.started_at + timedelta(hours=3) if int(c[1:]) % 5 == 0 else None
    async with broadcasts_on(env, audience) as broadcasts:
        handle = await broadcasts.start(batch_size=10)
        progress = await handle.result()
    started = audience.batches[0].started_at
    late = {c: at - started for (_, c), at in audience.sent_at.items() if int(c[1:]) % 5 == 0}
    assert len(late) == 10 and all(
        timedelta(hours=3) <= gap < timedelta(hours=3, minutes=1) for gap in late.values()
    )
    assert {b.pass_no for b in audience.batches} == {0, 1} and counts(progress) == {Outcome.SENT: 50}
    assert progress.pass_no == 1 and set(audience.sent_to(progress.broadcast_id).values()) == {1}


ZONES = ("Asia/Kathmandu", "Europe/Berlin", "America/New_York")
"""10:00 there is 04:15, 09:00 (08:00 in summer) and 15:00 (14:00) UTC: not half an hour apart, so a
broadcast that polled every half hour from one wave would miss the next."""


def by_zone(customer: str, request: BatchRequest) -> datetime:
    """``--local-time 10:00`` in the customer's zone (one of three, by id), after the start."""
    zone = ZoneInfo(ZONES[int(customer[1:]) % 3])
    local = request.started_at.astimezone(zone)
    at = datetime.combine(local.date(), time(10, 0), tzinfo=zone)
    return (at if at >= request.started_at else at + timedelta(days=1)).astimezone(UTC)


@pytest.mark.parametrize("next_due_known", [True, False], ids=["page-says-when", "polling"])
async def test_local_time_waves_send_each_zone_at_its_hour(
    env: WorkflowEnvironment, next_due_known: bool
) -> None:
    """Customers in three zones at 10:00 local: each zone's wave goes in a pass of its own at its
    10:00 (to the minute when the page says when the next wave is due; within the poll otherwise)."""
    audience = FakeAudience(60, due=by_zone, next_due_known=next_due_known)
    slack = timedelta(minutes=1) if next_due_known else timedelta(minutes=31)
    async with broadcasts_on(env, audience) as broadcasts:
        progress = await (await broadcasts.start(batch_size=7, local_time=time(10, 0))).result()
    assert counts(progress) == {Outcome.SENT: 60}
    for (_, customer), at in audience.sent_at.items():
        due = by_zone(customer, audience.batches[0])
        assert due <= at < due + slack, (customer, at, due)
    waves = {at.replace(second=0, microsecond=0) for at in audience.sent_at.values()}
    assert len(waves) == 3
    assert progress.pass_no == 3 if next_due_known else progress.pass_no > 3  # polled in between


async def test_the_deadline_expires_whoever_still_waits(env: WorkflowEnvironment) -> None:
    """Ten customers could go only after the deadline: at the deadline they expire (``deadline``),
    the others were sent, and the broadcast is done with the expired counted."""
    audience = FakeAudience(40)
    audience.due = lambda c, request: request.deadline + timedelta(hours=1) if c >= "c00030" else None
    async with broadcasts_on(env, audience) as broadcasts:
        deadline = await env.get_current_time() + timedelta(hours=6)
        progress = await (await broadcasts.start(batch_size=10, deadline=deadline)).result()
    assert counts(progress) == {Outcome.SENT: 30, Outcome.EXPIRED: 10}
    assert progress.state is BroadcastState.DONE and [e.reason for e in audience.expired] == ["deadline"]
    assert progress.finished_at is not None and deadline <= progress.finished_at < deadline + timedelta(
        minutes=1
    )


async def test_start_at_and_rate_pace_the_batches(env: WorkflowEnvironment) -> None:
    """``start_at`` two hours out and ``--rate 5/s`` with batches of 10: the first batch starts at
    the start, and the batches follow each other at least two seconds apart."""
    audience = FakeAudience(50)
    async with broadcasts_on(env, audience) as broadcasts:
        start_at = await env.get_current_time() + timedelta(hours=2)
        progress = await (await broadcasts.start(batch_size=10, rate=5, start_at=start_at)).result()
    times = sorted(audience.sent_at.values())
    assert times[0] >= start_at and counts(progress) == {Outcome.SENT: 50}
    batch_times = sorted(set(times))
    gaps = [later - earlier for earlier, later in zip(batch_times, batch_times[1:], strict=False)]
    assert len(batch_times) == 5 and all(gap >= timedelta(seconds=1.9) for gap in gaps), gaps


async def test_throttling_narrows_the_window_and_clean_batches_widen_it(env: WorkflowEnvironment) -> None:
    """Every batch throttled: the window ends at 1 and at most 8 batches were ever in flight; the
    first three throttled and the rest clean: the window is back at its full 8 by the end."""
    audience = FakeAudience(200, throttled=lambda request: 1.5)
    async with broadcasts_on(env, audience) as broadcasts:
        narrowed = await (await broadcasts.start(batch_size=5, window=8)).result()
        audience.throttled = lambda request: 1.5 if request.upto <= "c00014" else 0.0
        widened = await (await broadcasts.start(batch_size=5, window=8)).result()
    assert narrowed.window == 1 and audience.most_in_flight <= 8
    assert widened.window == 8


def test_window_halves_once_per_episode_and_grows_by_one_per_clean_window() -> None:
    """Four throttled reports from batches started together cut the window once (8 to 4); a batch
    started after the cut cuts again (to 2); two clean reports grow it to 3, three more to 4."""
    window = Window(limit=8)
    for _ in range(4):
        window.report(throttled=True, started_in=0)
    assert window.size == 4
    window.report(throttled=True, started_in=1)
    assert window.size == 2
    for _ in range(2):
        window.report(throttled=False, started_in=2)
    assert window.size == 3
    for _ in range(3):
        window.report(throttled=False, started_in=2)
    assert (window.size, Window(limit=8, size=20).size) == (4, 8)


def test_a_later_pass_moves_its_recipients_out_of_the_waiting_counters() -> None:
    """Pass 0 defers 5 and caps 2; a later batch of 5 reporting 4 sent and 1 deferred takes its 5
    from deferred and puts 1 back: 3 wait, exactly the 7 less the 4 sent, the capped kept."""
    tally: dict[Outcome, int] = {}
    add_report(tally, {Outcome.SENT: 3, Outcome.DEFERRED: 5, Outcome.CAPPED: 2}, later_pass=False)
    add_report(tally, {Outcome.SENT: 4, Outcome.DEFERRED: 1}, later_pass=True)
    assert tally == {Outcome.SENT: 7, Outcome.DEFERRED: 1, Outcome.CAPPED: 2}


async def test_a_scheduled_run_has_a_broadcast_id_of_its_own(env: WorkflowEnvironment) -> None:
    """Runs started as a schedule starts them (its time appended to the workflow id) send under
    ``weekly-YYYYMMDD-HHMMSS``, one id per run, found by the search attribute (upserted, since
    these starts set none)."""
    audience = FakeAudience(5)
    async with broadcasts_on(env, audience) as broadcasts:
        ids = []
        for week in ("2026-11-23", "2026-11-30"):
            handle = await broadcasts.start(f"broadcast:weekly-{week}T10:00:00Z", broadcast_id="weekly")
            ids.append((await handle.result()).broadcast_id)
            assert (await handle.describe()).typed_search_attributes.get(SA_BROADCAST) == ids[-1]
    assert ids == ["weekly-20261123-100000", "weekly-20261130-100000"]
    assert {b.spec.broadcast_id for b in audience.batches} == set(ids)
    assert {c for (b, c) in audience.ledger if b == ids[1]} == set(audience.ids)  # not deduplicated


LONGEST = "w" * SCHEDULE_NAME_MAX


@pytest.mark.parametrize(
    ("base", "workflow_id", "scheduled", "expected"),
    [
        ("weekly", "broadcast:weekly", False, "weekly"),
        ("weekly", "broadcast:weekly-2026-11-30T10:00:00Z", True, "weekly-20261130-100000"),
        ("weekly", "broadcast:weekly-2026-11-30T10:00:05Z", False, "weekly-20261130-100005"),
        ("weekly", "broadcast:weekly", True, None),  # a schedule whose runs would all share one id
        ("weekly", "broadcast:weekly-next", True, None),
        ("weekly", "broadcast__recorded", False, "weekly"),  # by hand, under an id of its own (a replay)
        (LONGEST, f"broadcast:{LONGEST}-2026-11-30T10:00:00Z", True, f"{LONGEST}-20261130-100000"),
        (LONGEST + "w", f"broadcast:{LONGEST}w-2026-11-30T10:00:00Z", True, None),  # past 80 characters
    ],
)
def test_run_broadcast_id(base: str, workflow_id: str, scheduled: bool, expected: str | None) -> None:
    """A scheduled run's id appends its time; anything else a schedule started is refused."""
    assert run_broadcast_id(base, workflow_id, scheduled=scheduled) == expected


async def test_the_ui_details_say_the_progress_in_words(env: WorkflowEnvironment) -> None:
    """While it waits for deferred recipients, the current details read the state, processed of
    total, the counters and when the next pass is."""
    audience = FakeAudience(
        20, due=lambda c, request: request.started_at + timedelta(hours=5) if c < "c00005" else None
    )
    async with broadcasts_on(env, audience) as broadcasts:
        handle = await broadcasts.start(batch_size=10)
        await broadcasts.until(lambda: len(audience.batches) == 2)
        for _ in range(100):
            progress = await PROGRESS.ask(handle)
            if progress.state is BroadcastState.WAITING:
                break
            await asyncio.sleep(0.02)
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    text = metadata.current_details
    assert text.startswith("**waiting** · 15 / 20 processed · 15 sent · 5 deferred"), text
    assert "next pass" in text and "deadline" in text


async def test_record_a_broadcast_history(env: WorkflowEnvironment) -> None:
    """A broadcast with a suppressed customer, a pause and a deferred sweep; its history is recorded
    once (sealed with the recording key) and kept: ``test_replay.py`` replays it, so that later
    changes must keep it replaying (``workflow.patched``)."""
    hold = asyncio.Event()
    audience = FakeAudience(30, suppressed={"c00002"}, hold=hold)
    audience.due = lambda c, request: request.started_at + timedelta(hours=1) if c >= "c00025" else None
    async with broadcasts_on(env, audience, keys=RECORDING_KEYS) as broadcasts:
        handle = await broadcasts.start(broadcast_id="recorded", batch_size=5, window=2)
        await broadcasts.until(lambda: audience.in_flight == 2)
        pausing = asyncio.create_task(handle.execute_update(PAUSE, result_type=Progress))
        await asyncio.sleep(0.2)
        hold.set()
        await pausing
        await handle.execute_update(RESUME, result_type=Progress)
        progress = await handle.result()
        history = await handle.fetch_history()
    assert counts(progress) == {Outcome.SENT: 29, Outcome.SUPPRESSED: 1}
    if not HISTORY.exists():
        HISTORY.write_text(history.to_json())  # noqa: ASYNC240
