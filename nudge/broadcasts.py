"""Broadcasts (群发): the wire models the ``Broadcast`` workflow and its activities share.

A broadcast sends one template to every customer of an audience, through the same gate as a
journey's sends. Its workflow never holds the audience: it asks for the audience's *bounds*, a page
at a time (the customer id that ends each batch, in id order, so a batch is the half-open range
``(after, upto]``), and each batch activity reads its own members. History stays the same size per
batch however large the audience is.

Recipients who cannot have their message now (quiet hours where they are, a full frequency cap,
``local_time`` not yet reached in their zone) keep a ``pending`` row with ``defer_until``. After the
audience is done the workflow sweeps them in passes: each pass stamps the rows then due with its
number (``Message.broadcast_pass``) and sends them in batches of that pass, until none is left or
the deadline passes (the rest then expire). A batch of a pass reports every row stamped with it,
whatever a crashed earlier attempt did to it, so a retried batch counts each recipient once.

These models are wire values (recorded histories hold them): a field added later needs a default.
"""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from nudge.models import Category

BROADCAST_JOURNEY = "broadcast"
"""``Message.journey`` of a broadcast's messages (``Message.broadcast_id`` says which one): a
``nudge pause journey broadcast`` holds every broadcast, and caps ``per="journey"`` count them together."""
BROADCAST_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,79}$"


def broadcast_workflow_id(broadcast_id: str) -> str:
    """The workflow id of a broadcast (a wire value)."""
    return f"broadcast:{broadcast_id}"


def broadcast_idempotency_key(broadcast_id: str, customer_id: str) -> str:
    """A broadcast's message to one customer: at most one, whatever retries or crashes happen."""
    return f"broadcast:{broadcast_id}:{customer_id}"


class BroadcastSpec(BaseModel):
    """What ``nudge broadcast start`` asks for: the workflow's input."""

    broadcast_id: str = Field(pattern=BROADCAST_ID_PATTERN)
    audience: str = Field(min_length=1, max_length=100)
    template: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)
    """Template variables shared by every recipient; a customer's own ``name`` fills ``${name}``
    (the params' ``name``, if any, is for customers without one)."""
    category: Category = Category.MARKETING
    route: str | None = None
    """Force this route (by name); no failover."""
    signature: str | None = None
    start_at: AwareDatetime | None = None
    """Start then instead of now."""
    local_time: time | None = None
    """Deliver at this hour in each recipient's own zone (the first such hour after the start)."""
    rate: float | None = Field(default=None, gt=0, le=100_000)
    """At most this many recipients per second (on top of each route's own rate)."""
    deadline: AwareDatetime | None = None
    """Deferred recipients still waiting then are not sent (``expired``); default: start + 48 h."""
    batch_size: int = Field(default=100, ge=1, le=1000)
    window: int = Field(default=8, ge=1, le=64)
    """Batches in flight at most (the window shrinks when a provider throttles, and grows back)."""


class PageRequest(BaseModel):
    """Input of ``broadcast_page``: the bounds of the next batches.

    Pass 0 pages the audience from ``after``. A later pass (``pass_no`` >= 1) first stamps this
    broadcast's deferred rows that are due at ``now`` with ``pass_no`` (idempotent: a retry stamps
    the same rows and any newly due), then pages the rows stamped with it from ``after``.
    """

    broadcast_id: str
    audience: str
    pass_no: int = 0
    after: str | None = None
    batches: int = Field(default=10, ge=1, le=100)
    batch_size: int = Field(default=100, ge=1, le=1000)
    now: datetime | None = None
    """The workflow's time, for a later pass's "due" (the activity's clock otherwise)."""


class Page(BaseModel):
    bounds: list[str] = Field(default_factory=list)
    """The customer id that ends each batch, ascending; batch i is (bounds[i-1], bounds[i]] (the
    first starts after ``PageRequest.after``)."""
    done: bool = False
    """No recipient after the last bound (for this pass)."""
    next_due: datetime | None = None
    """For a later pass: the earliest ``defer_until`` of this broadcast's rows still waiting that
    this pass did not stamp (not due at ``now``); None when none is, or unknown. The workflow sleeps
    until then (or the earliest its batches report) before its next pass: a row's batch reports
    only its batch's earliest, so the next ``--local-time`` wave is known from here (without it the
    workflow looks again every ``WAITING_POLL``)."""


class BatchRequest(BaseModel):
    """Input of ``send_broadcast_batch``: one batch of one pass."""

    spec: BroadcastSpec
    workflow_id: str
    started_at: datetime
    """When the broadcast started sending (``local_time`` is the first such hour after it)."""
    deadline: datetime
    pass_no: int = 0
    after: str | None = None
    upto: str


class Outcome(StrEnum):
    """Where a recipient stands after a batch (each is one counter of the progress)."""

    SENT = "sent"
    SUPPRESSED = "suppressed"
    NO_CONSENT = "no_consent"
    CAPPED = "capped"
    """Waiting for room under a frequency cap (swept again when it frees)."""
    DEFERRED = "deferred"
    """Waiting for quiet hours to end, for ``local_time``, or for a provider's deferral."""
    BLOCKED = "blocked"
    """Any other refusal: no phone, unreachable, paused, not approved, no route."""
    FAILED = "failed"
    EXPIRED = "expired"
    """Still waiting at the deadline (or at a cancel): never sent."""


WAITING = (Outcome.CAPPED, Outcome.DEFERRED)


class BatchReport(BaseModel):
    """What one batch did: every recipient of its range in exactly one counter."""

    counts: dict[Outcome, int] = Field(default_factory=dict)
    next_due: datetime | None = None
    """The earliest time a recipient of this batch left waiting may go."""
    throttled: float = 0.0
    """Seconds this batch spent waiting out providers' throttling (the window shrinks on it)."""

    @property
    def recipients(self) -> int:
        return sum(self.counts.values())


class ExpireRequest(BaseModel):
    broadcast_id: str
    reason: str = "deadline"
    """``deadline``, ``cancelled``, or ``failed`` (the broadcast stopped on a permanent error):
    recorded as the rows' reason ``expired:<reason>``."""


class ExpireReport(BaseModel):
    """How many waiting recipients expired, by what they were waiting for."""

    counts: dict[Outcome, int] = Field(default_factory=dict)


class CountRequest(BaseModel):
    broadcast_id: str
    audience: str


class BroadcastCounts(BaseModel):
    """From the store: the audience's size now, and the broadcast's messages by where they are."""

    audience: int = 0
    delivered: int = 0
    """Messages a delivery receipt confirmed (receipts go to the store, never to the workflow)."""


class BroadcastState(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    WAITING = "waiting"
    """The audience is done; deferred recipients wait for their time."""
    DONE = "done"
    CANCELLED = "cancelled"


class Progress(BaseModel):
    """The ``progress`` query's answer (and, in words, the workflow's current details)."""

    broadcast_id: str
    state: BroadcastState = BroadcastState.SCHEDULED
    total: int = 0
    """The audience's size when the broadcast started (it may change while it runs)."""
    counts: dict[Outcome, int] = Field(default_factory=dict)
    delivered: int = 0
    rate: float = 0.0
    """Recipients per second over the last batches."""
    window: int = 0
    pass_no: int = 0
    next_due: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def processed(self) -> int:
        return sum(n for outcome, n in self.counts.items() if outcome not in WAITING)
