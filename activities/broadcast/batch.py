"""One batch of a broadcast: its recipients through the gate, then the providers' batch APIs.

The steps, so that a retried batch (a worker killed at any moment) sends nobody twice:

1. The recipients' rows by idempotency key (broadcast, customer) and their standing, in a few reads.
   A row that is no longer pending is reported as it is.
2. A pending row an earlier attempt put on a route, with no note that the call failed before
   reaching it, may have been sent: it is looked up on that route, number by number (under its
   batch call's reference), before anything is sent again (``activities/send/reconcile.py``).
3. New rows are rendered, priced and stored ``pending`` in one insert, before any provider call.
4. The gate's checks for every recipient, the journey's own (``Gate.compliance``, then the
   broadcast's ``local_time``, then ``Gate.timing``), and the caps for the batch at once. A paused
   template, journey or signature defers its recipients (a resume lets them go at the next sweep);
   a wait that would end after the deadline expires at once.
5. The rest go out by route, in calls of the provider's batch size (``dispatch.py``).
6. The report reads the rows back: every recipient in exactly one counter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.send.compose import Composer, is_marketing
from activities.send.gate import Attempt, Gate
from activities.send.ledger import Standing
from activities.send.outcome import CONSENT_WITHDRAWN, DEFERRED, NO_CONSENT, SUPPRESSED
from activities.send.reconcile import Reconciler
from nudge.broadcasts import (
    BROADCAST_JOURNEY,
    WAITING,
    BatchReport,
    BatchRequest,
    Outcome,
    broadcast_idempotency_key,
)
from nudge.caps import CAPPED
from nudge.contracts import error_type
from nudge.errors import TemplateError
from nudge.models import FrequencyCap, MessageStatus, SendRequest
from nudge.quiet_hours import local_time_after, recipient_zone
from nudge.store import Customer, Link, Message
from nudge.templates import Template

from .dispatch import BatchDispatcher
from .rows import BatchRows, Decision

PAUSE_RECHECK = timedelta(minutes=10)
"""How long a paused broadcast recipient waits before the next sweep looks again."""
EXPIRED = "expired:"
TEMPLATE_ERROR = "template_error: "
RECONCILE_CONCURRENCY = 16


class BatchSender:
    def __init__(
        self,
        *,
        rows: BatchRows,
        composer: Composer,
        gate: Gate,
        reconciler: Reconciler,
        dispatcher: BatchDispatcher,
        caps: Sequence[FrequencyCap],
        clock: Callable[[], datetime],
    ) -> None:
        self._rows = rows
        self._composer = composer
        self._gate = gate
        self._reconciler = reconciler
        self._dispatcher = dispatcher
        self._caps = list(caps)
        self._clock = clock

    async def send(self, request: BatchRequest, customer_ids: Sequence[str]) -> BatchReport:
        spec = request.spec
        keys = {cid: broadcast_idempotency_key(spec.broadcast_id, cid) for cid in customer_ids}
        existing, standing = await self._rows.load(keys)
        templates: dict[str | None, Template] = {}

        async def template_for(customer: Customer | None) -> Template:
            language = (customer.attributes or {}).get("language") if customer else None
            if language not in templates:
                templates[language] = await self._composer.template(spec.template, customer)
            return templates[language]

        sends = {cid: self._request(request, cid, keys[cid], standing[cid].customer) for cid in customer_ids}
        fresh: list[tuple[Message, list[Link]]] = []
        for cid in customer_ids:
            if cid not in existing:
                fresh.append(await self._compose(sends[cid], standing[cid].customer, template_for, request))
        stored, lost = await self._rows.insert(fresh)
        beat()
        rows = {m.customer_id: m for m in stored}
        if lost:
            again, _ = await self._rows.load({cid: keys[cid] for cid in lost})
            existing |= again
        new_ids = {m.id for m in stored}
        rows |= existing

        now = self._clock()
        pending = [m for m in rows.values() if m.status == MessageStatus.PENDING]
        # 2. Rows an earlier attempt may have sent: ask their route before deciding anything.
        ambiguous = [m for m in pending if m.id not in new_ids and m.route and m.reason is None]
        reconciled = await self._reconcile(ambiguous, template_for, standing)
        pending = [m for m in pending if m.id not in reconciled]
        # Not due yet (a retry of a batch whose recipients were deferred): left waiting.
        pending = [m for m in pending if m.defer_until is None or m.defer_until <= now]

        decisions: list[Decision] = []
        passing: list[Attempt] = []
        for message in pending:
            customer = standing[message.customer_id].customer
            template = await template_for(customer)
            attempt = Attempt(
                sends[message.customer_id],
                message,
                template,
                standing[message.customer_id],
                marketing=is_marketing(sends[message.customer_id], template),
            )
            decision = await self._judge(attempt, request, now)
            if decision is None:
                passing.append(attempt)
            else:
                decisions.append(decision)
        # A row that took its place under the caps before a crash keeps it.
        full = await self._rows.reserve(
            [a.message for a in passing if a.message.cap_reserved_at is None], self._caps, now=now
        )
        for attempt in list(passing):
            cap = full.get(attempt.message.customer_id)
            if cap is not None:
                passing.remove(attempt)
                reason, frees_at = cap
                decisions.append(self._wait(attempt.message, f"{DEFERRED}{reason}", frees_at, request))
        await self._rows.decide(decisions)
        beat()

        throttled = await self._dispatcher.dispatch(
            passing,
            category=spec.category,
            forced=spec.route,
            wait=lambda d: self._wait(d.message, d.reason, d.until, request),
        )
        final = await self._rows.final(keys.values())
        report = BatchReport(throttled=throttled)
        counts: dict[Outcome, int] = {}
        left = []
        for message in final:
            outcome = outcome_of(message)
            if outcome is None:
                left.append(message)
                continue
            counts[outcome] = counts.get(outcome, 0) + 1
            due = message.defer_until
            if outcome in WAITING and due is not None and (report.next_due is None or due < report.next_due):
                report.next_due = due
        if left:
            # Providers throttled or failed retryably, or their routes are all down: the activity
            # comes back (its retry policy), and finds the rest decided.
            raise ApplicationError(
                f"{len(left)} of {len(final)} recipients not sent yet (retrying): "
                + "; ".join(sorted({m.reason or "no answer" for m in left})[:3]),
                type="BroadcastBatchIncomplete",
            )
        report.counts = counts
        return report

    async def _compose(
        self,
        send: SendRequest,
        customer: Customer | None,
        template_for: Callable[[Customer | None], Awaitable[Template]],
        request: BatchRequest,
    ) -> tuple[Message, list[Link]]:
        """The new row for one recipient: rendered and priced, or blocked when their variables
        do not fit the template (one customer's profile never fails the whole batch)."""
        template = await template_for(customer)
        try:
            message, links = self._composer.message(send, template, customer)
        except ApplicationError as exc:
            if exc.type != error_type(TemplateError):
                raise
            message, links = self._composer.blocked(send, template, f"{TEMPLATE_ERROR}{exc.message}"), []
        message.broadcast_id = request.spec.broadcast_id
        message.broadcast_pass = request.pass_no
        return message, links

    def _request(
        self, request: BatchRequest, customer_id: str, key: str, customer: Customer | None
    ) -> SendRequest:
        spec = request.spec
        params = dict(spec.params)
        if customer is not None and customer.name:
            params["name"] = customer.name  # the params' own name is for those without one
        return SendRequest(
            idempotency_key=key,
            workflow_id=request.workflow_id,
            journey=BROADCAST_JOURNEY,
            step=spec.broadcast_id,
            customer_id=customer_id,
            template=spec.template,
            params=params,
            category=spec.category,
            route=spec.route,
            signature=spec.signature,
        )

    async def _judge(self, attempt: Attempt, request: BatchRequest, now: datetime) -> Decision | None:
        """The journey's checks in their order, with the broadcast's own ``local_time`` before
        the quiet hours; None when the message may go (caps aside)."""
        for check in self._gate.compliance:
            refusal = await check(attempt)
            if refusal is not None:
                if refusal.reason.startswith("paused:"):
                    return self._wait(
                        attempt.message, f"{DEFERRED}{refusal.reason}", now + PAUSE_RECHECK, request
                    )
                return Decision(attempt.message, refusal.reason)
        spec = request.spec
        if spec.local_time is not None and attempt.message.to:
            customer = attempt.standing.customer
            zone = recipient_zone(attempt.message.to, profile_zone=customer.timezone if customer else None)
            target = local_time_after(request.started_at, spec.local_time, zone)
            if target > now:
                return self._wait(attempt.message, f"{DEFERRED}local_time", target, request)
        for check in self._gate.timing:
            refusal = await check(attempt)
            if refusal is not None:
                if refusal.until is None:
                    return Decision(attempt.message, refusal.reason)
                return self._wait(attempt.message, f"{DEFERRED}{refusal.reason}", refusal.until, request)
        return None

    @staticmethod
    def _wait(message: Message, reason: str, until: datetime | None, request: BatchRequest) -> Decision:
        """Wait until then, unless that is after the deadline (or never): expired at once."""
        if until is None or until > request.deadline:
            return Decision(message, f"{EXPIRED}deadline ({reason})")
        return Decision(message, reason, until)

    async def _reconcile(
        self,
        messages: Sequence[Message],
        template_for: Callable[[Customer | None], Awaitable[Template]],
        standing: dict[str, Standing],
    ) -> set[str]:
        """Ask the route about each message an earlier attempt may have sent; the ids it found
        (recorded as submitted). A route that cannot tell yet fails the batch for a later retry."""
        if not messages:
            return set()
        limit = asyncio.Semaphore(RECONCILE_CONCURRENCY)
        found: set[str] = set()
        waiting: list[ApplicationError] = []

        async def one(message: Message) -> None:
            async with limit:
                template = await template_for(standing[message.customer_id].customer)
                try:
                    if await self._reconciler.reconcile(message, template) is not None:
                        found.add(message.id)
                except ApplicationError as exc:
                    waiting.append(exc)

        await asyncio.gather(*(one(m) for m in messages))
        if waiting:
            raise waiting[0]
        return found


def beat() -> None:
    """Tell Temporal the batch is alive (its heartbeat timeout finds a killed worker's batch in
    seconds, not at the end of its start-to-close timeout)."""
    if activity.in_activity():
        activity.heartbeat()


def outcome_of(message: Message) -> Outcome | None:
    """Which counter a recipient's row is in; None while it is undecided (pending, not waiting)."""
    status = MessageStatus(message.status)
    reason = message.reason or ""
    if status in (
        MessageStatus.SUBMITTED,
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
    ):
        return Outcome.SENT
    if status is MessageStatus.FAILED:
        return Outcome.FAILED
    if status is MessageStatus.BLOCKED:
        if reason.startswith(EXPIRED):
            return Outcome.EXPIRED
        if reason == SUPPRESSED:
            return Outcome.SUPPRESSED
        if reason == NO_CONSENT or reason.startswith(CONSENT_WITHDRAWN):
            return Outcome.NO_CONSENT
        return Outcome.BLOCKED
    if message.defer_until is not None and reason.startswith(DEFERRED):
        return Outcome.CAPPED if reason.startswith(f"{DEFERRED}{CAPPED}") else Outcome.DEFERRED
    return None
