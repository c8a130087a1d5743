"""Test journeys in milliseconds on Temporal's time-skipping test server.

    async def test_click_earns_coupon(journeys: JourneyTester) -> None:
        run = await journeys.start(CartAbandonment, customer="c1", cart_id="k1")
        await run.advance(hours=1)
        await run.click(run.sent[-1])
        await run.advance(hours=2)
        assert run.sent_templates == ["cart_reminder", "cart_coupon"]

The tester runs the journeys on a fresh task queue with in-memory stand-ins for the
``send_message`` and ``get_profile`` activities, registered under the real activities' names.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from nudge.binaries import find_binary
from nudge.bucketing import bucket
from nudge.codec import new_key
from nudge.contracts import EVENT, MESSAGE, STATE
from nudge.experiments import VariantChoice, VariantRequest
from nudge.models import (
    Event,
    JourneyInput,
    JourneyResult,
    JourneyState,
    MessageStatus,
    MessageUpdate,
    Profile,
    SendDecision,
    SendRequest,
    SendResult,
)
from nudge.temporal import ensure_search_attributes, sealed_converter
from workflows.journey import Journey


async def register_search_attributes(client: Client) -> None:
    """Register Nudge's search attributes (the Java test server has no flag for it)."""
    await ensure_search_attributes(client)


@asynccontextmanager
async def time_skipping_environment(*, codec_keys: str | None = None) -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, its client sealing payloads as Nudge's do.

    Args:
        codec_keys: ``NUDGE_CODEC_KEYS``-style keys; a fresh one for this environment if not given.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=sealed_converter(codec_keys or new_key("test")),
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    try:
        await register_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


class FakeCarrier:
    """In-memory ``send_message`` and ``get_profile``: what a journey sent, and to whom."""

    def __init__(self) -> None:
        self.profiles: dict[str, Profile] = {}
        self.requests: list[SendRequest] = []
        self.results: dict[str, SendResult] = {}
        self.block: dict[str, str] = {}
        """Template code -> reason, for sends the gate should refuse (``capped:...`` caps them)."""
        self.defer: dict[str, timedelta] = {}
        """Template code -> how long the first attempt is deferred (a provider frequency limit)."""
        self.assignments: list[VariantRequest] = []
        self.assignments_fail = False
        """When set, ``assign_variant`` fails for good (the store out of reach through every retry)."""
        self.winners: dict[str, str] = {}
        """Experiment -> its concluded winner, for ``assign_variant``."""
        self.calls: list[SendRequest] = []
        """Every call, retries and deferred re-sends included."""
        self.hold: asyncio.Event | None = None
        """When set, sends wait for this event: a send still in flight."""
        self.in_flight = 0
        self.clock: Callable[[], Awaitable[datetime]] | None = None
        """The (time-skipping) server's clock, for deferrals: a local activity's info carries the
        worker's own time, which the test server's skipped time has left behind."""

    @activity.defn(name="send_message")
    async def send_message(self, request: SendRequest) -> SendResult:
        self.in_flight += 1
        self.calls.append(request)
        try:
            if self.hold is not None:
                await self.hold.wait()
            earlier = self.results.get(request.idempotency_key)
            if earlier is not None and earlier.decision is not SendDecision.DEFERRED:
                return earlier
            if earlier is None:
                self.requests.append(request)
                message_id = f"m{len(self.requests)}"
            else:
                message_id = earlier.message_id
            reason = self.block.get(request.template)
            delay = self.defer.get(request.template)
            if earlier is None and delay is not None:
                # Time as the (time-skipping) server sees it, not this process's clock.
                now = await self.clock() if self.clock else activity.info().current_attempt_scheduled_time
                retry_at = now + delay
                result = SendResult(
                    message_id=message_id,
                    decision=SendDecision.DEFERRED,
                    reason="deferred:frequency_limit",
                    retry_at=retry_at,
                )
            else:
                refused = (
                    SendDecision.CAPPED if (reason or "").startswith("capped:") else SendDecision.BLOCKED
                )
                result = SendResult(
                    message_id=message_id,
                    decision=refused if reason else SendDecision.SENT,
                    reason=reason,
                    provider=None if reason else "fake",
                    status=None if reason else MessageStatus.SUBMITTED,
                )
            self.results[request.idempotency_key] = result
            return result
        finally:
            self.in_flight -= 1

    @activity.defn(name="get_profile")
    async def get_profile(self, customer_id: str) -> Profile:
        return self.profiles.get(customer_id) or Profile(customer_id=customer_id, exists=False)

    @activity.defn(name="assign_variant")
    async def assign_variant(self, request: VariantRequest) -> VariantChoice:
        """The declared split, or the winner a test set in ``winners`` (a concluded experiment)."""
        self.assignments.append(request)
        if self.assignments_fail:
            raise ApplicationError("the store is down", type="StoreUnavailable", non_retryable=True)
        if (winner := self.winners.get(request.experiment)) is not None:
            return VariantChoice(variant=winner, reason="winner", allocation={winner: 1.0})
        return VariantChoice(
            variant=bucket(request.experiment, request.customer_id, request.weights), reason="weights"
        )


class JourneyRun:
    """One running journey under test."""

    def __init__(self, tester: JourneyTester, handle: WorkflowHandle[Any, Any], customer: str) -> None:
        self._tester = tester
        self.handle = handle
        self.customer = customer

    @property
    def sent(self) -> list[SendResult]:
        """Results of this journey's sends, in order (blocked ones included)."""
        carrier = self._tester.carrier
        return [
            carrier.results[r.idempotency_key] for r in carrier.requests if r.workflow_id == self.handle.id
        ]

    @property
    def requests(self) -> list[SendRequest]:
        return [r for r in self._tester.carrier.requests if r.workflow_id == self.handle.id]

    @property
    def sent_templates(self) -> list[str]:
        return [r.template for r in self.requests]

    async def advance(self, **duration: float) -> None:
        """Let simulated time pass (``days=``, ``hours=``, ``minutes=``...), then settle."""
        await self._tester.env.sleep(timedelta(**duration))
        await self.settle()

    async def settle(self) -> None:
        """Wait (in real time) until the journey is parked on a timer, a wait, or done."""
        last = None
        stable = 0
        for _ in range(200):
            state = await self.state()
            busy = state.step.startswith("send:") or self._tester.carrier.in_flight
            key = (state.step, len(state.messages))
            stable = stable + 1 if key == last and not busy else 0
            if stable >= 2 or state.outcome is not None:
                return
            last = key
            await asyncio.sleep(0.02)

    async def event(self, name: str, **properties: Any) -> None:
        await EVENT.send(
            self.handle,
            Event(
                event_id=uuid.uuid4().hex,
                customer_id=self.customer,
                name=name,
                properties=properties,
                occurred_at=datetime.now(UTC),
            ),
        )
        await self.settle()

    async def click(self, message: SendResult) -> None:
        await MESSAGE.send(self.handle, MessageUpdate(message_id=message.message_id, kind="click"))
        await self.settle()

    async def receipt(self, message: SendResult, status: MessageStatus) -> None:
        await MESSAGE.send(
            self.handle, MessageUpdate(message_id=message.message_id, kind="receipt", status=status)
        )
        await self.settle()

    async def state(self) -> JourneyState:
        return await STATE.ask(self.handle)

    async def result(self) -> JourneyResult:
        result: JourneyResult = await self.handle.result()
        return result


class JourneyTester:
    """Starts journeys on the time-skipping server against a ``FakeCarrier``."""

    def __init__(
        self, env: WorkflowEnvironment, worker: Worker, carrier: FakeCarrier, task_queue: str
    ) -> None:
        self.env = env
        self.worker = worker
        self.carrier = carrier
        self.task_queue = task_queue
        self.runs: list[JourneyRun] = []

    async def start(
        self,
        journey: type[Journey],
        *,
        customer: str,
        event: str | None = None,
        config: dict[str, Any] | None = None,
        profile: Profile | None = None,
        **properties: Any,
    ) -> JourneyRun:
        """Start ``journey`` as the gateway would: signal-with-start with its trigger event."""
        if profile is not None:
            self.carrier.profiles[customer] = profile
        key = str(properties[journey.key]) if journey.key and journey.key in properties else None
        trigger = Event(
            event_id=uuid.uuid4().hex,
            customer_id=customer,
            name=event or journey.trigger,
            properties=properties,
            occurred_at=datetime.now(UTC),
        )
        handle = await self.env.client.start_workflow(
            journey.run,
            JourneyInput(customer_id=customer, key=key, config=config or {}),
            id=journey.workflow_id(customer, key),
            task_queue=self.task_queue,
            start_signal=EVENT.name,
            start_signal_args=[trigger],
        )
        run = JourneyRun(self, handle, customer)
        self.runs.append(run)
        await run.settle()
        return run


@asynccontextmanager
async def journey_tester(
    env: WorkflowEnvironment,
    journeys: Sequence[type[Journey]],
    *,
    carrier: FakeCarrier | None = None,
    extra_activities: Sequence[Callable[..., Any]] = (),
) -> AsyncIterator[JourneyTester]:
    """A worker for ``journeys`` on a fresh task queue, with a fake carrier."""
    carrier = carrier or FakeCarrier()
    carrier.clock = env.get_current_time
    task_queue = f"test-{uuid.uuid4().hex[:12]}"
    worker = Worker(
        env.client,
        task_queue=task_queue,
        workflows=list(journeys),
        activities=[carrier.send_message, carrier.get_profile, carrier.assign_variant, *extra_activities],
    )
    async with worker:
        tester = JourneyTester(env, worker, carrier, task_queue)
        try:
            yield tester
        finally:
            # A journey left running would keep firing timers for a worker that is gone, and the
            # test server does not skip time past workflow tasks nobody completes.
            for run in tester.runs:
                with contextlib.suppress(RPCError):
                    await run.handle.terminate("test finished")
