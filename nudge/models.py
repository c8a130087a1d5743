"""Domain models shared by the gateway, the workflows and the activities.

These are plain pydantic models with no I/O, so workflows can import them through the sandbox.
A field added later must have a default, so that recorded histories still decode.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, Field, ValidationError, field_validator

from nudge.errors import InvalidEvent

M = TypeVar("M", bound=BaseModel)

_PRINTABLE_END = r"[^\x00-\x20\x7f-\x9f\u2028\u2029]"
IDENTIFIER_PATTERN = rf"^{_PRINTABLE_END}([^\x00-\x1f\x7f-\x9f\u2028\u2029]*{_PRINTABLE_END})?$"
"""An id a service sends (customer, event): 1-200 characters, no control characters (C0, DEL, C1,
line and paragraph separators: no newline or NUL that could forge a log line or a key), and no
whitespace at either end. Written so that both pydantic and JSON Schema tools read it."""
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SKEW = timedelta(days=1)
"""How far ahead of the gateway's clock an event's ``occurred_at`` may be (a client's clock skew)."""


class Category(StrEnum):
    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


class Event(BaseModel):
    """A behaviour event reported by a service, e.g. ``cart_abandoned``."""

    event_id: str = Field(min_length=1, max_length=200)
    customer_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_.]*$")
    properties: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime | None = None

    def parse(self, model: type[M]) -> M:
        """The properties as ``model`` (a pydantic model): typed, with its defaults.

        In a journey's ``steps``, properties that do not fit end the journey
        ``invalid_event:<fields>`` instead of failing it.

        Raises:
            InvalidEvent: a property is missing or of the wrong type.
        """
        try:
            return model.model_validate(self.properties)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in error["loc"]) or "?" for error in exc.errors()})
            raise InvalidEvent(
                f"{self.name} properties do not fit {model.__name__}: {exc.error_count()} error(s)",
                fields=fields,
            ) from exc


class EventIn(Event):
    """An event as the gateway takes it: the checks a journey must never meet later.

    ``customer_id`` and ``event_id`` are identifiers (``IDENTIFIER_PATTERN``); numbers in
    ``properties`` are finite (``NaN``, ``Infinity`` and ``1e999`` are refused, where a template
    would fail on them); ``occurred_at`` is ISO 8601 with an offset, from 2000 on and no more than a
    day ahead (an integer such as ``0`` would be 1970).
    """

    event_id: str = Field(min_length=1, max_length=200, pattern=IDENTIFIER_PATTERN)
    customer_id: str = Field(min_length=1, max_length=200, pattern=IDENTIFIER_PATTERN)
    occurred_at: AwareDatetime | None = Field(
        default=None, description="ISO 8601 with an offset, e.g. 2026-12-01T10:00:00+08:00."
    )

    @field_validator("properties")
    @classmethod
    def _finite(cls, value: dict[str, Any]) -> dict[str, Any]:
        if (where := _non_finite(value, "properties")) is not None:
            raise ValueError(f"{where}: numbers must be finite (no NaN or Infinity)")
        return value

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ValueError("occurred_at must be an ISO 8601 string with an offset, not a number")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _plausible(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return value
        if value < EARLIEST_EVENT:
            raise ValueError(f"occurred_at is before {EARLIEST_EVENT.date().isoformat()}")
        if value > datetime.now(UTC) + FUTURE_SKEW:
            raise ValueError("occurred_at is more than a day in the future")
        return value


def _non_finite(value: Any, where: str) -> str | None:
    """Where in ``value`` a non-finite number is, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    if isinstance(value, dict):
        for key, item in value.items():
            if (found := _non_finite(item, f"{where}.{key}")) is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _non_finite(item, f"{where}[{index}]")) is not None:
                return found
    return None


class Profile(BaseModel):
    """What a journey may read about a customer (from the CRM)."""

    customer_id: str
    name: str | None = None
    phone: str | None = None
    lifecycle_stage: str = "new"
    country: str | None = None
    timezone: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    exists: bool = True


class JourneyInput(BaseModel):
    """Input of every journey workflow; the trigger event arrives as the start signal."""

    customer_id: str
    key: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class MessageStatus(StrEnum):
    """A message's lifecycle. Ranks only ever go up, so a late receipt never regresses it."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    BLOCKED = "blocked"

    @property
    def rank(self) -> int:
        return _STATUS_RANK[self]

    @property
    def terminal(self) -> bool:
        return self in (self.DELIVERED, self.FAILED, self.UNDELIVERED, self.BLOCKED)


_STATUS_RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.SUBMITTED: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.UNDELIVERED: 3,
    MessageStatus.FAILED: 3,
    MessageStatus.BLOCKED: 3,
}


class FrequencyCap(BaseModel):
    """At most ``limit`` messages of ``category`` per customer (or per journey) in ``window``.

    Caps are global: every journey and broadcast counts towards them. A journey can pass stricter
    caps of its own to ``send_sms(..., caps=[...])``; all caps that apply must hold. ``per="journey"``
    counts the customer's messages from the same journey (all its runs: every cart of a
    cart-abandonment journey), ``per="customer"`` all of them.
    """

    limit: int = Field(ge=0)
    window: timedelta
    category: Category = Category.MARKETING
    per: Literal["customer", "journey"] = "customer"

    @property
    def label(self) -> str:
        return f"{self.limit}/{_short(self.window)} per {self.per}"


def _short(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0 and (unit != "d" or seconds > 86_400):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class SendRequest(BaseModel):
    """Input of the ``send_message`` activity."""

    idempotency_key: str
    workflow_id: str
    journey: str
    step: str
    customer_id: str
    template: str
    params: dict[str, Any] = Field(default_factory=dict)
    category: Category = Category.MARKETING
    variant: str | None = None
    notify_receipt: bool = False
    """Signal the journey on the delivery receipt (clicks are always signalled)."""
    route: str | None = None
    """Force this route (by name) instead of the routing rules; no failover."""
    signature: str | None = None
    """Override the route's signature (SignName) or sender."""
    caps: list[FrequencyCap] = Field(default_factory=list)
    """The journey's own caps, on top of the global ones (they can only make sending stricter)."""


class SendDecision(StrEnum):
    SENT = "sent"
    BLOCKED = "blocked"
    DEFERRED = "deferred"
    """Not now: try again at ``SendResult.retry_at`` (a frequency limit, later quiet hours)."""
    SUPPRESSED = "suppressed"
    """The number opted out of marketing (a STOP reply, a provider's opt-out)."""
    CAPPED = "capped"
    """A frequency cap is full; ``SendResult.retry_at`` says when it frees up."""


class SendResult(BaseModel):
    """Result of the ``send_message`` activity."""

    message_id: str
    decision: SendDecision
    reason: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    segments: int = 0
    route: str | None = None
    cost: float | None = None
    status: MessageStatus | None = None
    """The message's status when the activity finished (a receipt may have beaten the answer)."""
    retry_at: datetime | None = None
    """For ``DEFERRED``: when to try again; for ``CAPPED``: when the cap has room again."""


class MessageUpdate(BaseModel):
    """A receipt or a click for one message, signalled to its journey."""

    message_id: str
    kind: Literal["receipt", "click"]
    status: MessageStatus | None = None
    error_code: str | None = None
    url: str | None = None
    at: datetime | None = None


class SentMessage(BaseModel):
    """A journey's own record of a message it sent (part of the ``state`` query)."""

    message_id: str
    step: str
    template: str
    decision: SendDecision
    reason: str | None = None
    status: MessageStatus | None = None
    clicked: bool = False
    variant: str | None = None
    route: str | None = None
    """The provider route it went out on."""


class JourneyState(BaseModel):
    """What ops see through the ``state`` query."""

    journey: str
    customer_id: str
    key: str | None = None
    step: str = "starting"
    detail: str = ""
    events_seen: list[str] = Field(default_factory=list)
    messages: list[SentMessage] = Field(default_factory=list)
    variants: dict[str, str] = Field(default_factory=dict)
    outcome: str | None = None
    reason: str | None = None


class JourneyResult(BaseModel):
    """How a journey ended: ``converted``, ``exited`` (with a reason) or ``completed``."""

    outcome: Literal["converted", "exited", "completed"]
    reason: str | None = None
    messages: list[SentMessage] = Field(default_factory=list)
    duration: timedelta | None = None
