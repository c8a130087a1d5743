"""One batch of a broadcast: its recipients through the gate, then the providers' batch APIs.

The steps, so that a retried batch (a worker killed at any moment) sends nobody twice:

1. The recipients' rows by idempotency key (broadcast, customer) and their standing, in a few reads.
   A row that is no longer pending is reported as it is.
2. A pending row an earlier attempt put on a route, with no note that the call failed before
   reaching it, may have been sent: it is looked up on that route, number by number (under its
   batch call's reference), before anything is sent again (``activities/send/reconcile.py``).
3. New rows are rendered, priced and stored ``pending`` in one insert, before any provider call.
4. The gate's checks for every recipient, the journey's own and the broadcast's ``local_time``,
   and the caps for the batch at once (``gate.py``).
5. The rest go out by route, in calls of the provider's batch size (``dispatch.py``).
6. The report reads the rows back: every recipient in exactly one counter (``report.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.send.compose import Composer, is_marketing
from activities.send.gate import Attempt, Gate
from activities.send.ledger import Standing
from activities.send.reconcile import Reconciler
from nudge.broadcasts import BROADCAST_JOURNEY, BatchReport, BatchRequest, broadcast_idempotency_key
from nudge.contracts import error_type
from nudge.errors import TemplateError
from nudge.models import FrequencyCap, MessageStatus, SendRequest
from nudge.store import Customer, Link, Message
from nudge.templates import Template

from .dispatch import BatchDispatcher
from .gate import BatchGate, within_deadline
from .report import report
from .rows import BatchRows

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
        self._gate = BatchGate(gate=gate, rows=rows, caps=caps)
        self._reconciler = reconciler
        self._dispatcher = dispatcher
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

        attempts = [
            await self._attempt(sends[m.customer_id], m, standing[m.customer_id], template_for)
            for m in pending
        ]
        passing = await self._gate.admit(attempts, request, now)
        beat()

        throttled = await self._dispatcher.dispatch(
            passing,
            category=spec.category,
            forced=spec.route,
            wait=lambda d: within_deadline(d.message, d.reason, d.until, request),
        )
        return report(await self._rows.final(keys.values()), throttled=throttled)

    @staticmethod
    async def _attempt(
        send: SendRequest,
        message: Message,
        standing: Standing,
        template_for: Callable[[Customer | None], Awaitable[Template]],
    ) -> Attempt:
        template = await template_for(standing.customer)
        return Attempt(send, message, template, standing, marketing=is_marketing(send, template))

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
