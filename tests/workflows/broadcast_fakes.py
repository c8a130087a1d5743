"""The four broadcast activities over an audience held in memory, registered under the real names.

``FakeAudience`` keeps what the store would: one row per (broadcast, customer) with where it
stands, the pass that last took it up and when it may go, and a ledger of the messages sent.
A test arms it: customers suppressed or without consent, recipients who wait until a time (a
zone's ``--local-time``, quiet hours), a throttled report, batches that fail, batches that block
until released.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from nudge.broadcasts import (
    WAITING,
    BatchReport,
    BatchRequest,
    BroadcastCounts,
    CountRequest,
    ExpireReport,
    ExpireRequest,
    Outcome,
    Page,
    PageRequest,
)


@dataclass
class Row:
    outcome: Outcome
    pass_no: int = 0
    defer_until: datetime | None = None


@dataclass
class FakeAudience:
    """An audience of ``size`` customers ``c00000``, ``c00001``... and the broadcasts sent to it."""

    size: int
    name: str = "everyone"
    clock: Callable[[], Awaitable[datetime]] | None = None
    """The (time-skipping) server's clock: the activity's own process clock is left behind."""
    suppressed: set[str] = field(default_factory=set)
    unconsented: set[str] = field(default_factory=set)
    due: Callable[[str, BatchRequest], datetime | None] = lambda customer, request: None
    """When a customer may have the message (None: now); later than now defers them."""
    throttled: Callable[[BatchRequest], float] = lambda request: 0.0
    fail: Callable[[BatchRequest, int], ApplicationError | None] = lambda request, attempt: None
    """The error a batch's attempt raises, if any (``attempt`` counts from 1)."""
    next_due_known: bool = True
    """Whether a later pass's page says when the next recipients are due (``Page.next_due``)."""
    hold: asyncio.Event | None = None
    """When set, batches wait for it: batches still in flight."""
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    ledger: Counter[tuple[str, str]] = field(default_factory=Counter)
    sent_at: dict[tuple[str, str], datetime] = field(default_factory=dict)
    batches: list[BatchRequest] = field(default_factory=list)
    """Every batch attempt, in the order they started."""
    batch_runs: list[str] = field(default_factory=list)
    """The workflow run that started each batch attempt."""
    pages: list[PageRequest] = field(default_factory=list)
    expired: list[ExpireRequest] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    @property
    def ids(self) -> list[str]:
        return [f"c{i:05d}" for i in range(self.size)]

    async def now(self) -> datetime:
        return await self.clock() if self.clock else datetime.now(UTC)

    def sent_to(self, broadcast_id: str) -> Counter[str]:
        return Counter({c: n for (b, c), n in self.ledger.items() if b == broadcast_id})

    @activity.defn(name="broadcast_counts")
    async def broadcast_counts(self, request: CountRequest) -> BroadcastCounts:
        if request.audience != self.name:
            raise ApplicationError(
                f"no audience named {request.audience!r}", type="NotFound", non_retryable=True
            )
        delivered = sum(1 for (b, _), n in self.ledger.items() if b == request.broadcast_id and n)
        return BroadcastCounts(audience=self.size, delivered=delivered)

    @activity.defn(name="broadcast_page")
    async def broadcast_page(self, request: PageRequest) -> Page:
        self.pages.append(request)
        if request.pass_no == 0:
            members = self.ids
            next_due = None
        else:
            assert request.now is not None, "a later pass stamps by the workflow's time"
            mine = {c: row for (b, c), row in self.rows.items() if b == request.broadcast_id}
            for row in mine.values():
                if row.outcome in WAITING and row.defer_until and row.defer_until <= request.now:
                    row.pass_no = request.pass_no
            members = sorted(c for c, row in mine.items() if row.pass_no == request.pass_no)
            later = [
                r.defer_until for r in mine.values() if r.outcome in WAITING and r.pass_no != request.pass_no
            ]
            next_due = min((t for t in later if t), default=None) if self.next_due_known else None
        after = [c for c in members if request.after is None or c > request.after]
        taken = after[: request.batches * request.batch_size]
        bounds = taken[request.batch_size - 1 :: request.batch_size]
        if taken and (not bounds or bounds[-1] != taken[-1]):
            bounds.append(taken[-1])
        return Page(bounds=bounds, done=len(after) == len(taken), next_due=next_due)

    @activity.defn(name="send_broadcast_batch")
    async def send_broadcast_batch(self, request: BatchRequest) -> BatchReport:
        self.batches.append(request)
        self.batch_runs.append(activity.info().workflow_run_id or "")
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.hold is not None:
                await self.hold.wait()
            if (error := self.fail(request, activity.info().attempt)) is not None:
                raise error
            return await self._send(request)
        finally:
            self.in_flight -= 1

    async def _send(self, request: BatchRequest) -> BatchReport:
        now = await self.now()
        broadcast = request.spec.broadcast_id

        def in_range(customer: str) -> bool:
            return (request.after is None or customer > request.after) and customer <= request.upto

        if request.pass_no == 0:
            members = [c for c in self.ids if in_range(c)]
        else:
            members = sorted(
                c for (b, c), row in self.rows.items() if b == broadcast and row.pass_no == request.pass_no
            )
            members = [c for c in members if in_range(c)]
        counts: Counter[Outcome] = Counter()
        for customer in members:
            row = self.rows.get((broadcast, customer))
            if row is None:
                row = self.rows[(broadcast, customer)] = Row(outcome=self._gate(customer))
                due = self.due(customer, request) if row.outcome is Outcome.SENT else None
                if due is not None and due > now:
                    row.outcome, row.defer_until = Outcome.DEFERRED, due
            elif row.outcome in WAITING and row.defer_until is not None and row.defer_until <= now:
                row.outcome = Outcome.SENT
            if row.outcome is Outcome.SENT and not self.ledger[(broadcast, customer)]:
                self.ledger[(broadcast, customer)] += 1  # the idempotency key: one message, ever
                self.sent_at[(broadcast, customer)] = now
            counts[row.outcome] += 1
        rows = [self.rows[(broadcast, c)] for c in members]
        next_due = min((r.defer_until for r in rows if r.outcome in WAITING and r.defer_until), default=None)
        return BatchReport(counts=dict(counts), next_due=next_due, throttled=self.throttled(request))

    def _gate(self, customer: str) -> Outcome:
        if customer in self.suppressed:
            return Outcome.SUPPRESSED
        if customer in self.unconsented:
            return Outcome.NO_CONSENT
        return Outcome.SENT

    @activity.defn(name="expire_broadcast")
    async def expire_broadcast(self, request: ExpireRequest) -> ExpireReport:
        self.expired.append(request)
        counts: Counter[Outcome] = Counter()
        for (b, _), row in self.rows.items():
            if b == request.broadcast_id and row.outcome in WAITING:
                counts[row.outcome] += 1
                row.outcome = Outcome.EXPIRED
        return ExpireReport(counts=dict(counts))

    @property
    def activities(self) -> list[Callable[..., object]]:
        return [self.broadcast_counts, self.broadcast_page, self.send_broadcast_batch, self.expire_broadcast]
