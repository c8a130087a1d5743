"""The journey runtime: the building blocks a journey is written with.

A journey is a class. Declaring one makes it a Temporal workflow whose type is the class name:

    class CartAbandonment(Journey):
        trigger = "cart_abandoned"
        key = "cart_id"
        goal = "order_paid"

        class Config(JourneyConfig):
            first_wait: timedelta = timedelta(hours=1)

        async def steps(self, event: Event) -> None:
            await self.sleep(self.config.first_wait)
            ...

The runtime, not the author, handles goals and exit events (it cancels ``steps``), step names,
search attributes, the UI's current details, and the idempotency key of every send.

Everything here is deterministic: time is ``workflow.now()``, and all I/O goes through activities.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.humanize import human, snake
from workflows.policies import PROFILE_TIMEOUT, READ_RETRY, SEND_RETRY, SEND_TIMEOUT
from workflows.sms import SmsHandle

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict

    from nudge.contracts import (
        EVENT,
        MESSAGE,
        OPTED_OUT,
        SA_CUSTOMER,
        SA_JOURNEY,
        SA_OUTCOME,
        SA_STEP,
        STATE,
        get_profile,
        send_message,
    )
    from nudge.errors import InvalidEvent
    from nudge.models import (
        Category,
        Event,
        FrequencyCap,
        JourneyInput,
        JourneyResult,
        JourneyState,
        MessageStatus,
        MessageUpdate,
        Profile,
        SendDecision,
        SendRequest,
        SendResult,
        SentMessage,
    )

    # Pure and deterministic; passed through so that the sandbox need not reload it per run (and
    # so that ``make mutation``'s trampolines in it read the real environment).
    from workflows.keys import bucket, journey_workflow_id, send_idempotency_key


@dataclass(frozen=True, slots=True)
class Reentry:
    """Whether a customer may enter a journey again: ``Reentry.NEVER`` (the default),
    ``Reentry.ALWAYS``, or ``Reentry.after(timedelta(days=7))``, a cool-down since the last entry.
    A journey may also write a bare ``timedelta``; it means ``Reentry.after`` it."""

    always: bool = False
    cooldown: timedelta | None = None

    NEVER: ClassVar[Reentry]
    ALWAYS: ClassVar[Reentry]

    @classmethod
    def after(cls, cooldown: timedelta) -> Reentry:
        if cooldown <= timedelta(0):
            raise ValueError(f"a re-entry cool-down must be positive, not {cooldown}")
        return cls(cooldown=cooldown)

    def allows(self, *, since_last_entry: timedelta | None) -> bool:
        """May the customer enter again, ``since_last_entry`` after the last time (None: never did)?"""
        if self.always or since_last_entry is None:
            return True
        return self.cooldown is not None and since_last_entry >= self.cooldown

    def __str__(self) -> str:
        if self.always:
            return "always"
        return f"after {human(self.cooldown)}" if self.cooldown else "never"


Reentry.NEVER = Reentry()
Reentry.ALWAYS = Reentry(always=True)


class JourneyConfig(BaseModel):
    """A journey's tunable parameters (delays, windows). Overridden per deployment, e.g. the demo."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class _JourneyExit(Exception):
    """Raised by ``Journey.exit`` to unwind ``steps``; never leaves the runtime."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Journey:
    """Base class of every journey. Subclasses declare the class attributes and ``steps``."""

    trigger: ClassVar[str]
    """The event that starts the journey."""
    key: ClassVar[str | None] = None
    """Event property that makes one instance per customer *and* value (e.g. ``cart_id``)."""
    goal: ClassVar[str | None] = None
    """Event that, at any point, ends the journey as converted."""
    exit_on: ClassVar[frozenset[str]] = frozenset()
    """Events that end the journey early."""
    listens: ClassVar[frozenset[str]] = frozenset()
    """Other events ``steps`` waits for with ``wait_for``; only these are signalled."""
    reentry: ClassVar[Reentry] = Reentry.NEVER
    """Whether a customer may enter again once an instance for the same id has run."""
    category: ClassVar[Category] = Category.MARKETING
    name: ClassVar[str]
    """Stable identifier used in workflow ids and search attributes (snake_case class name)."""
    Config: ClassVar[type[JourneyConfig]] = JourneyConfig

    if TYPE_CHECKING:
        # Made per subclass by ``__init_subclass__`` (the SDK wants it on the workflow class).
        async def run(self, input: JourneyInput) -> JourneyResult: ...

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "trigger" not in cls.__dict__:
            return  # an abstract intermediate class
        cls.name = cls.__dict__.get("name", snake(cls.__name__))
        if isinstance(cls.__dict__.get("reentry"), timedelta):
            cls.reentry = Reentry.after(cls.__dict__["reentry"])
        if not isinstance(cls.reentry, Reentry):
            raise TypeError(f"{cls.__name__}.reentry must be a Reentry or a timedelta, not {cls.reentry!r}")

        async def run(self, input: JourneyInput) -> JourneyResult:  # type: ignore[no-untyped-def]
            return await self._run()

        # The SDK wants the run method defined on the workflow class itself.
        run.__qualname__ = f"{cls.__name__}.run"
        run.__module__ = cls.__module__
        cls.run = workflow.run(run)  # type: ignore[method-assign]
        workflow.defn(name=cls.__name__)(cls)

    @classmethod
    def listened_events(cls) -> frozenset[str]:
        """Every event name a running instance of this journey wants to be signalled."""
        opt_out = {OPTED_OUT} if cls.category is Category.MARKETING else set()
        return frozenset({cls.goal} if cls.goal else set()) | cls.exit_on | cls.listens | opt_out

    @classmethod
    def workflow_id(cls, customer_id: str, key: str | None = None) -> str:
        return journey_workflow_id(cls.name, customer_id, key)

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

    # ----- the building blocks ------------------------------------------------------------

    async def steps(self, event: Event) -> None:
        raise NotImplementedError

    async def sleep(self, duration: timedelta) -> None:
        """Sleep durably for ``duration``."""
        until = workflow.now() + duration
        self._set_step("sleep", f"sleeping {human(duration)}, until {until:%Y-%m-%d %H:%M:%S} UTC")
        await workflow.sleep(duration, summary=f"sleep {human(duration)}")

    async def sleep_until(self, moment: datetime) -> None:
        """Sleep durably until ``moment`` (timezone-aware); returns at once if it has passed."""
        delta = moment - workflow.now()
        if delta > timedelta(0):
            await self.sleep(delta)

    async def wait_for(self, *names: str, timeout: timedelta) -> Event | None:
        """Wait up to ``timeout`` for one of ``names``; returns the event, or None on timeout.

        An event that arrived earlier in this journey and was not yet consumed counts.
        """
        undeclared = set(names) - self.listened_events()
        if undeclared:
            raise ApplicationError(
                f"{type(self).__name__} waits for {sorted(undeclared)} but does not declare them "
                "in `listens`, so the gateway would never signal them",
                type="JourneyDefinitionError",
                non_retryable=True,
            )
        found: list[Event] = []

        def arrived() -> bool:
            for event in self._inbox:
                if event.name in names:
                    self._inbox.remove(event)
                    found.append(event)
                    return True
            return False

        await self._wait(
            arrived,
            timeout,
            step=f"wait:{'|'.join(names)}",
            detail=f"waiting for {' or '.join(names)}",
        )
        return found[0] if found else None

    async def profile(self) -> Profile:
        """The customer's CRM profile (a local activity: no extra server round trip)."""
        return await workflow.execute_local_activity(
            get_profile,
            self.customer_id,
            start_to_close_timeout=PROFILE_TIMEOUT,
            retry_policy=READ_RETRY,
            summary="read profile",
        )

    async def send_sms(
        self,
        template: str,
        params: Mapping[str, Any] | None = None,
        *,
        required: bool = False,
        variant: str | None = None,
        notify_receipt: bool = False,
        route: str | None = None,
        signature: str | None = None,
        caps: Sequence[FrequencyCap] = (),
    ) -> SmsHandle:
        """Send ``template`` through the gate; the handle says whether it went out and why not.

        A send the gate defers (quiet hours, a provider's per-number limit) sleeps until the time
        it gives and goes again; a capped send returns ``capped`` with the time the cap frees.

        Args:
            template: The template's code in the registry.
            params: The template's variables (a URL among them becomes a tracked link).
            required: End the journey ``not_sent:<reason>`` when the gate does not send it.
            variant: The A/B variant to attribute the send to (default: the last ``split``).
            notify_receipt: Signal the delivery receipt to this journey (``handle.receipt``).
            route: Force a route by name.
            signature: Override the route's signature.
            caps: Frequency caps stricter than the global ones, e.g.
                ``[FrequencyCap(limit=1, window=timedelta(days=1), per="journey")]``.
        """
        self._seq += 1
        step = f"send:{template}"
        self._set_step(step, f"sending {template}", transient=True)
        info = workflow.info()
        request = SendRequest(
            idempotency_key=send_idempotency_key(info.workflow_id, info.first_execution_run_id, self._seq),
            workflow_id=info.workflow_id,
            journey=self.name,
            step=step,
            customer_id=self.customer_id,
            template=template,
            params=dict(params or {}),
            category=self.category,
            variant=variant or self._variant,
            notify_receipt=notify_receipt,
            route=route,
            signature=signature,
            caps=list(caps),
        )
        result = await self._send(request)
        while result.decision is SendDecision.DEFERRED and result.retry_at is not None:
            if not workflow.patched("deferred-send"):
                break
            self._set_step(
                f"deferred:{template}",
                f"{template} deferred ({result.reason}) until {result.retry_at:%Y-%m-%d %H:%M:%S} UTC",
            )
            delta = result.retry_at - workflow.now()
            if delta > timedelta(0):
                await workflow.sleep(delta, summary=f"deferred {human(delta)}")
            result = await self._send(request)
        record = SentMessage(
            message_id=result.message_id,
            step=step,
            template=template,
            decision=result.decision,
            reason=result.reason,
            variant=request.variant,
            route=result.route,
            status=(result.status or MessageStatus.SUBMITTED)
            if result.decision is SendDecision.SENT
            else None,
        )
        # A receipt or click that raced ahead of the activity result is already buffered.
        early = self._records.get(result.message_id)
        if early is not None:
            record.clicked = early.clicked
            if early.status is not None and (record.status is None or early.status.rank > record.status.rank):
                record.status = early.status
        self._records[result.message_id] = record
        self._state.messages.append(record)
        if required and record.decision is not SendDecision.SENT:
            self.exit(f"not_sent:{record.reason}")
        return SmsHandle(self, record, result, notifies_receipt=notify_receipt)

    async def _send(self, request: SendRequest) -> SendResult:
        if workflow.patched("local-send"):
            # A local activity: the worker runs the send inside the workflow task that asks for
            # it, with no activity task through the server and no second workflow task for its
            # result. Safe to run again after a lost workflow task: the send is idempotent by its
            # key and reconciles an in-doubt attempt.
            return await workflow.execute_local_activity(
                send_message,
                request,
                start_to_close_timeout=SEND_TIMEOUT,
                retry_policy=SEND_RETRY,
                summary=f"send {request.template}",
            )
        return await workflow.execute_activity(
            send_message,
            request,
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=SEND_RETRY,
            summary=f"send {request.template}",
        )

    def split(self, experiment: str, weights: Mapping[str, float]) -> str:
        """Assign this customer to a variant, deterministically; later sends are attributed to it."""
        variant = bucket(experiment, self.customer_id, weights)
        self._state.variants[experiment] = variant
        self._variant = f"{experiment}:{variant}"
        return variant

    def exit(self, reason: str) -> NoReturn:
        """End the journey now with ``reason``."""
        raise _JourneyExit(reason)

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
