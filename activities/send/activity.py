"""``send_message``: the one activity every SMS goes through, step by step.

Order of work, so that a retry never sends twice:

1. ``ledger.lookup``: find the message by its idempotency key, with the recipient's standing
   (suppression, consent, profile). A message that is no longer pending is returned as it is.
2. ``compose``: otherwise render the template variant, price it on its best route, and store it
   ``pending`` (committed before any provider is called).
3. ``reconcile``: a pending row left by an earlier attempt may have reached the provider; unless
   that attempt recorded that nothing was sent, ask the route it used before sending again.
4. ``gate``: the ordered checks (approval, reachability, suppression, consent, pauses, quiet hours,
   caps); the first that refuses blocks or defers the message.
5. ``dispatch``: the best usable route, with failover, and the provider's answer recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.compliance.complaints import ComplaintRecorder
from activities.compliance.pauses import PauseCache
from activities.compliance.registry import Registry
from activities.routing import Router
from nudge.caps import DEFAULT_CAPS
from nudge.metrics import DECISIONS, reason_kind
from nudge.models import FrequencyCap, MessageStatus, SendRequest, SendResult
from nudge.quiet_hours import DEFAULT_WINDOWS, Window
from nudge.sinks import StreamSink
from nudge.templates import Template

from .compose import Composer, is_marketing, recipient
from .dispatch import Dispatcher
from .gate import Attempt, Gate
from .ledger import Ledger
from .outcome import result
from .reconcile import Reconciler
from .refusal import Refusals


class SendActivities:
    """Built by the worker with its store, router, registry and public gateway URL.

    Without a ``registry``, one on the same store is made, seeded on first use with the built-in
    templates and the router's signatures (what the worker's own registry holds on a fresh
    database). ``complaints`` counts providers' send-time opt-out codes against the complaint-rate
    breaker; ``pauses`` is what the gate reads paused scopes through. Both default to their own on
    ``sessions`` (without an alert webhook). What the send decides is published to the stream's
    ``sinks`` (sent, blocked, failed), in the transaction that records it.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        router: Router,
        *,
        link_base_url: str,
        registry: Registry | None = None,
        status_callbacks: Mapping[str, str] | None = None,
        quiet_hours: Mapping[str, Window] = DEFAULT_WINDOWS,
        caps: Sequence[FrequencyCap] = DEFAULT_CAPS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        complaints: ComplaintRecorder | None = None,
        pauses: PauseCache | None = None,
        sinks: Sequence[StreamSink] = (),
    ) -> None:
        pauses = pauses or PauseCache(sessions)
        registry = registry or Registry(sessions, routes=[route.config for route in router.routes])
        self._ledger = Ledger(sessions, sinks=sinks)
        refusals = Refusals(sessions, complaints=complaints or ComplaintRecorder(sessions), sinks=sinks)
        self._composer = Composer(
            registry=registry, router=router, link_base_url=link_base_url, status_callbacks=status_callbacks
        )
        self._gate = Gate(ledger=self._ledger, pauses=pauses, quiet_hours=quiet_hours, caps=caps, clock=clock)
        self._reconciler = Reconciler(
            router=router, composer=self._composer, ledger=self._ledger, clock=clock
        )
        self._dispatcher = Dispatcher(
            router=router,
            registry=registry,
            pauses=pauses,
            composer=self._composer,
            ledger=self._ledger,
            refusals=refusals,
        )

    @activity.defn(name="send_message")
    async def send_message(self, request: SendRequest) -> SendResult:
        return await self._send(request)

    async def _send(self, request: SendRequest) -> SendResult:
        """The steps above (undecorated, so that ``make mutation`` can mutate it)."""
        message, standing = await self._ledger.lookup(request)
        customer = standing.customer
        template: Template | None = None
        fresh = False
        if message is None:
            template = await self._composer.template(request.template, customer)
            message, fresh = await self._ledger.insert(*self._composer.message(request, template, customer))
        if message.status != MessageStatus.PENDING:
            return result(message)
        if template is None:
            # A later attempt: the same variant the first one rendered, by the customer's language.
            template = await self._composer.template(request.template, customer)
        if not fresh and message.route and message.reason is None:
            # An earlier attempt called this route and never learned the answer.
            reconciled = await self._reconciler.reconcile(message, template)
            if reconciled is not None:
                return decided(result(reconciled), request)

        attempt = Attempt(request, message, template, standing, marketing=is_marketing(request, template))
        refusal = await self._gate.refusal(attempt)
        if refusal is not None:
            if refusal.recorded is not None:
                return decided(result(refusal.recorded), request)
            if refusal.until is not None:
                return decided(
                    result(await self._ledger.defer(message.id, refusal.reason, refusal.until)), request
                )
            return decided(result(await self._ledger.block(message.id, refusal.reason)), request)
        to = recipient(message.to or "", customer)
        return decided(result(await self._dispatcher.dispatch(request, message, template, to)), request)


def decided(outcome: SendResult, request: SendRequest) -> SendResult:
    """Count the gate's decision on a message (once: a repeat returns before deciding)."""
    DECISIONS.labels(outcome.decision.value, reason_kind(outcome.reason), request.category.value).inc()
    return outcome
