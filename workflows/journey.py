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

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.experiments import choose_variant
from workflows.humanize import human, snake
from workflows.lifecycle import Lifecycle, _JourneyExit
from workflows.options import JourneyConfig, Reentry
from workflows.policies import PROFILE_TIMEOUT, READ_RETRY
from workflows.sms import SmsHandle, send

with workflow.unsafe.imports_passed_through():
    from nudge.contracts import (
        OPTED_OUT,
        get_profile,
    )
    from nudge.experiments import Metric
    from nudge.models import (
        Category,
        Event,
        FrequencyCap,
        JourneyInput,
        JourneyResult,
        MessageStatus,
        Profile,
        SendDecision,
        SendRequest,
        SentMessage,
    )
    from nudge.templates import Template

    # Pure and deterministic; passed through so that the sandbox need not reload it per run (and
    # so that ``make mutation``'s trampolines in it read the real environment).
    from workflows.keys import journey_workflow_id, legacy_journey_workflow_id, send_idempotency_key


class Journey(Lifecycle):
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
    templates: ClassVar[tuple[Template, ...]] = ()
    """Templates this journey brings (and their language variants), so that a new journey and its
    copy live in one module: seeded as approved into a fresh registry, like the built-in ones; a
    template already stored keeps the operators' edits."""

    if TYPE_CHECKING:
        # Made per subclass by ``__init_subclass__`` (the SDK wants it on the workflow class).
        async def run(self, input: JourneyInput) -> JourneyResult: ...

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "trigger" not in cls.__dict__:
            return  # an abstract intermediate class
        cls.name = cls.__dict__.get("name", snake(cls.__name__))
        if isinstance(cls.reentry, timedelta):  # declared here or on an intermediate base class
            cls.reentry = Reentry.after(cls.reentry)
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

    @classmethod
    def legacy_workflow_id(cls, customer_id: str, key: str | None = None) -> str:
        """The id this journey had before ids were escaped (``keys.legacy_journey_workflow_id``)."""
        return legacy_journey_workflow_id(cls.name, customer_id, key)

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
        result = await send(request)
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
            result = await send(request)
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

    async def split(
        self,
        experiment: str,
        weights: Mapping[str, float],
        *,
        bandit: bool = False,
        metric: Metric = Metric.CLICKED,
    ) -> str:
        """Place this customer in a variant of ``experiment`` (recorded; a customer keeps their
        first one, and a concluded experiment gives the winner); later sends are attributed to it.

        Args:
            experiment: The experiment's name, e.g. ``welcome_copy``.
            weights: Each variant's share, e.g. ``{"a": 0.5, "b": 0.5}``.
            bandit: Shift traffic toward the variant most likely best on ``metric`` as results
                arrive (Thompson sampling), instead of keeping ``weights``.
            metric: What the bandit and the verdict judge: clicks, deliveries or conversions.
        """
        variant = await choose_variant(
            journey=self.name,
            customer_id=self.customer_id,
            experiment=experiment,
            weights=weights,
            bandit=bandit,
            metric=metric,
        )
        self._state.variants[experiment] = variant
        self._variant = f"{experiment}:{variant}"
        return variant

    def exit(self, reason: str) -> NoReturn:
        """End the journey now with ``reason``."""
        raise _JourneyExit(reason)
