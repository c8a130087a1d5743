"""The state a broadcast keeps, and what ops ask of it: the ``progress`` query, and the updates
that pause, resume and cancel it (each answers with the progress once it took effect), with the
validators that refuse what cannot be done (a pause of a paused or finished broadcast, say).

``Broadcast`` (``workflow.py``) is a ``Control``: the story lives there, the handlers here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.broadcast.carry import Carry
from workflows.broadcast.ids import SCHEDULED_BY, run_broadcast_id
from workflows.broadcast.policies import HISTORY_BOUND
from workflows.broadcast.tally import RATE_SAMPLES, details, recent_rate
from workflows.broadcast.window import Pacer, Window

with workflow.unsafe.imports_passed_through():
    from nudge.broadcasts import BroadcastSpec, BroadcastState, Progress
    from nudge.contracts import CANCEL, PAUSE, PROGRESS, RESUME

RUNNING, WAITING, PAUSED = BroadcastState.RUNNING, BroadcastState.WAITING, BroadcastState.PAUSED
FINISHED = (BroadcastState.DONE, BroadcastState.CANCELLED)
FINAL_MEMO = "progress"
"""The memo key a closed broadcast's final ``Progress`` is kept under (a wire value)."""


class Control:
    """One broadcast's state; ``carry`` is what the previous run handed on (None for the first)."""

    @workflow.init
    def __init__(self, spec: BroadcastSpec, carry: Carry | None = None) -> None:
        # A start passes the spec alone, and the SDK decodes by the run's type hints only when the
        # arguments match them in number: one argument of two arrives as plain JSON.
        spec = BroadcastSpec.model_validate(spec)
        carry = Carry.model_validate(carry) if carry is not None else None
        info = workflow.info()
        scheduled = info.typed_search_attributes.get(SCHEDULED_BY) is not None
        own_id = (
            spec.broadcast_id
            if carry
            else run_broadcast_id(spec.broadcast_id, info.workflow_id, scheduled=scheduled)
        )
        self._own_id = own_id is not None
        self._spec = spec.model_copy(update={"broadcast_id": own_id}) if own_id else spec
        self._carried = carry is not None
        carry = carry or Carry(
            progress=Progress(broadcast_id=self._spec.broadcast_id), deadline=workflow.now()
        )
        self._progress = carry.progress
        self._phase = carry.progress.state
        self._deadline = carry.deadline
        self._pass_now = carry.pass_now
        self._cursor = carry.cursor
        self._paused = carry.paused
        self._samples = deque(carry.samples, maxlen=RATE_SAMPLES)
        self._counted_at = carry.counted_at
        self._runs = carry.runs
        self._window = Window(limit=spec.window, size=carry.progress.window or None, clean=carry.clean)
        self._pacer = Pacer(spec.rate)
        self._cancelling = False
        self._failure: ActivityError | None = None
        self._failed: str | None = None
        self._in_flight = 0
        self._counting = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._crash: BaseException | None = None
        """A bug in a task of this workflow's own (``_spawn``): the run raises it, which fails the
        workflow task until a fixed worker replays it, instead of hanging on a count never kept."""

    def _stopping(self) -> bool:
        return self._cancelling or self._failure is not None or self._crash is not None

    def _due(self, moment: datetime | None) -> None:
        if moment is not None and (self._progress.next_due is None or moment < self._progress.next_due):
            self._progress.next_due = moment

    async def _drain(self) -> None:
        """Wait until no batch and no count is in flight."""
        await workflow.wait_condition(lambda: self._in_flight == 0 and not self._counting)
        if self._crash is not None:
            raise self._crash

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except BaseException as exc:
                self._crash = self._crash or exc
                raise

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _history_full(self) -> bool:
        info = workflow.info()
        return info.get_current_history_length() >= HISTORY_BOUND or info.is_continue_as_new_suggested()

    def _snapshot(self) -> Progress:
        state = self._phase
        if self._paused and state not in FINISHED:
            state = PAUSED
        rate = recent_rate(self._samples) if state is RUNNING else 0.0
        return self._progress.model_copy(
            update={"state": state, "window": self._window.size, "rate": rate}, deep=True
        )

    def _show(self) -> None:
        text = details(self._snapshot(), deadline=self._deadline if self._progress.started_at else None)
        workflow.set_current_details(f"{text} · {self._failed}" if self._failed else text)

    def _finished(self) -> bool:
        return self._phase in FINISHED or self._failed is not None

    # ----- what ops ask ---------------------------------------------------------------------

    @workflow.query(name=PROGRESS.name)
    def progress(self) -> Progress:
        return self._snapshot()

    @workflow.update(name=PAUSE)
    async def pause(self) -> Progress:
        """No new batch starts; answers once every batch in flight has finished."""
        self._paused = True
        self._show()
        await workflow.wait_condition(lambda: self._in_flight == 0 or self._finished())
        return self._snapshot()

    @pause.validator
    def _may_pause(self) -> None:
        self._refuse_if_finished("pause")
        if self._paused:
            raise ApplicationError(f"broadcast {self._spec.broadcast_id} is paused already", type="Conflict")

    @workflow.update(name=RESUME)
    def resume(self) -> Progress:
        """Batches start again (at ``--rate`` from now on, with no burst for the time paused)."""
        self._paused = False
        self._pacer.restart()
        self._show()
        return self._snapshot()

    @resume.validator
    def _may_resume(self) -> None:
        self._refuse_if_finished("resume")
        if not self._paused:
            raise ApplicationError(f"broadcast {self._spec.broadcast_id} is not paused", type="Conflict")

    @workflow.update(name=CANCEL)
    async def cancel(self) -> Progress:
        """Stop: no new batch; answers once those in flight have finished and whoever still waits
        has expired (``expired:cancelled``)."""
        self._cancelling = True
        self._show()
        await workflow.wait_condition(self._finished)
        if self._failed:
            raise ApplicationError(f"broadcast {self._spec.broadcast_id}: {self._failed}", type="Conflict")
        return self._snapshot()

    @cancel.validator
    def _may_cancel(self) -> None:
        self._refuse_if_finished("cancel")

    def _refuse_if_finished(self, action: str) -> None:
        if self._failed:
            state = f"failed ({self._failed})"
        elif self._finished():
            state = self._phase.value
        elif self._cancelling:
            state = "being cancelled"
        else:
            return
        raise ApplicationError(
            f"cannot {action} broadcast {self._spec.broadcast_id}: it is {state}", type="Conflict"
        )
