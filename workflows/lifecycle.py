"""What the runtime does around a journey's ``steps``: its state, the signals and the query it
answers, the step it shows in the UI and search attributes, and the run loop that ends it.

``Journey`` (``journey.py``) is a ``Lifecycle``: authors write ``steps`` with the building blocks
there and never call anything here. Everything is deterministic.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.humanize import human

with workflow.unsafe.imports_passed_through():
    from nudge.contracts import EVENT, MESSAGE, OPTED_OUT, SA_CUSTOMER, SA_JOURNEY, SA_OUTCOME, SA_STEP, STATE
    from nudge.errors import InvalidEvent
    from nudge.models import (
        Category,
        Event,
        JourneyInput,
        JourneyResult,
        JourneyState,
        MessageUpdate,
        SendDecision,
        SentMessage,
    )

if TYPE_CHECKING:
    from workflows.options import JourneyConfig


class _JourneyExit(Exception):
    """Raised by ``Journey.exit`` to unwind ``steps``; never leaves the runtime."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Lifecycle:
    """The state of one running journey and the handlers the server calls on it."""

    if TYPE_CHECKING:
        # Declared (with their documentation) and set by ``Journey``.
        trigger: ClassVar[str]
        goal: ClassVar[str | None]
        exit_on: ClassVar[frozenset[str]]
        category: ClassVar[Category]
        name: ClassVar[str]
        Config: ClassVar[type[JourneyConfig]]

        async def steps(self, event: Event) -> None: ...

    @workflow.init
    def __init__(self, input: JourneyInput) -> None:
        self.input = input
        self.config = self.Config.model_validate(input.config)
        self.customer_id = input.customer_id
        self._state = JourneyState(journey=self.name, customer_id=input.customer_id, key=input.key)
        self._trigger: Event | None = None
        self._seen_ids: set[str] = set()
        self._inbox: list[Event] = []
        self._ending: tuple[str, str | None] | None = None
        self._records: dict[str, SentMessage] = {}
        self._seq = 0
        self._variant: str | None = None
        self._lean = False
        """Upsert NudgeStep only where a journey parks, not for transient steps (set in ``_run``)."""

    # ----- signals and queries -------------------------------------------------------------

    @workflow.signal(name=EVENT.name)
    def on_event(self, event: Event) -> None:
        if event.event_id in self._seen_ids:
            return
        self._seen_ids.add(event.event_id)
        self._state.events_seen.append(event.name)
        if self._trigger is None and event.name == self.trigger:
            self._trigger = event
        elif event.name == self.goal:
            self._ending = self._ending or ("converted", event.name)
        elif event.name == OPTED_OUT and self.category is Category.MARKETING:
            # The customer replied STOP (or 退订, R...): marketing journeys end at once.
            self._ending = self._ending or ("exited", OPTED_OUT)
        elif event.name in self.exit_on:
            self._ending = self._ending or ("exited", f"event:{event.name}")
        else:
            self._inbox.append(event)

    @workflow.signal(name=MESSAGE.name)
    def on_message(self, update: MessageUpdate) -> None:
        record = self._records.get(update.message_id)
        if record is None:
            # The signal can arrive before the send activity's result; keep it for send_sms.
            record = SentMessage(
                message_id=update.message_id,
                step="",
                template="",
                decision=SendDecision.SENT,
            )
            self._records[update.message_id] = record
        if update.kind == "click":
            record.clicked = True
        elif update.status is not None and (record.status is None or update.status.rank > record.status.rank):
            record.status = update.status

    @workflow.query(name=STATE.name)
    def state(self) -> JourneyState:
        return self._state

    # ----- internals -----------------------------------------------------------------------

    async def _wait(self, condition: Any, timeout: timedelta, *, step: str, detail: str) -> bool:
        self._set_step(step, f"{detail}, {human(timeout)} left")
        try:
            await workflow.wait_condition(
                condition, timeout=timeout, timeout_summary=f"{detail} ({human(timeout)})"
            )
        except TimeoutError:
            return False
        return True

    def _set_step(self, step: str, detail: str, *, transient: bool = False, **extra: str) -> None:
        """Record the step for the ``state`` query and the UI's current details, and upsert it
        as the NudgeStep search attribute. Every upsert is a visibility write on the server, so a
        transient step (a send, over in milliseconds) is not upserted; where a journey parks is."""
        self._state.step = step
        self._state.detail = detail
        if not (transient and self._lean):
            pairs = [SA_STEP.value_set(step)]
            if extra.get("outcome"):
                pairs.append(SA_OUTCOME.value_set(extra["outcome"]))
            workflow.upsert_search_attributes(pairs)
        workflow.set_current_details(f"**{self.name}** for `{self.customer_id}`: {detail}")

    async def _run(self) -> JourneyResult:
        self._lean = workflow.patched("lean-search-attributes")
        present = workflow.info().typed_search_attributes
        if not (
            self._lean
            and present.get(SA_JOURNEY) == self.name
            and present.get(SA_CUSTOMER) == self.customer_id
        ):
            # The gateway sets these when it starts the journey; upsert only when it did not.
            workflow.upsert_search_attributes(
                [SA_JOURNEY.value_set(self.name), SA_CUSTOMER.value_set(self.customer_id)]
            )
        await workflow.wait_condition(lambda: self._trigger is not None or self._ending is not None)
        started = workflow.now()
        outcome: str = "completed"
        reason: str | None = None
        if self._ending is not None:
            outcome, reason = self._ending
        else:
            assert self._trigger is not None
            task = asyncio.create_task(self.steps(self._trigger))
            await workflow.wait_condition(lambda: task.done() or self._ending is not None)
            cancelled = not task.done()
            if cancelled:
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except _JourneyExit as exit_:
                outcome, reason = "exited", exit_.reason
            except InvalidEvent as exc:
                # A trigger or awaited event whose properties do not fit what the journey reads.
                outcome, reason = "exited", f"invalid_event:{','.join(exc.fields)}"
            except ActivityError:
                # A goal or exit event (an opt-out, say) cancelled steps during a send: the
                # activity reports its cancellation as an error, and the ending decides.
                if not cancelled:
                    raise
            if self._ending is not None:
                outcome, reason = self._ending
        self._state.outcome, self._state.reason = outcome, reason
        step = f"done:{outcome}"
        if self._lean:
            self._set_step(step, f"{outcome}" + (f" ({reason})" if reason else ""), outcome=outcome)
        else:
            self._set_step(step, f"{outcome}" + (f" ({reason})" if reason else ""))
            workflow.upsert_search_attributes([SA_OUTCOME.value_set(outcome)])
        workflow.logger.info("journey ended: %s %s", outcome, reason or "")
        return JourneyResult(
            outcome=outcome,  # type: ignore[arg-type]
            reason=reason,
            messages=self._state.messages,
            duration=workflow.now() - started,
        )
