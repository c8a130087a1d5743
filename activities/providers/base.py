"""The one interface every SMS provider adapter implements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from nudge.errors import ProviderError
from nudge.models import MessageStatus


class OutboundSms(BaseModel):
    """One rendered message, ready for a provider."""

    message_id: str
    """Nudge's id; sent as the provider's client reference (OutId, SessionContext, ...)."""
    to: str
    """E.164."""
    body: str
    """The rendered text, without the signature (what Twilio sends; the others render it)."""
    signature: str
    """Aliyun/Tencent SignName, or Twilio's ``From``."""
    template_code: str | None = None
    """The template's code in this provider's console (Aliyun ``SMS_...``, Tencent's id)."""
    template_params: dict[str, str] = Field(default_factory=dict)
    """Template variables in order of first appearance (Tencent's are positional)."""
    status_callback: str | None = None
    batch_ref: str | None = None
    """The client reference of the batch call that carried it (a broadcast's): the provider's
    batch API takes one reference per call (Aliyun's OutId, Tencent's SessionContext), so a lost
    answer is looked up number by number under this reference."""

    @property
    def references(self) -> tuple[str, ...]:
        """The client references a lookup may find this message under."""
        return (self.message_id, self.batch_ref) if self.batch_ref else (self.message_id,)


class Submission(BaseModel):
    """A provider accepted a message."""

    provider: str
    provider_message_id: str | None
    """BizId, SID or SerialNo; None when the provider's lookup does not say (Aliyun)."""
    segments: int | None = None
    """Billed parts, when the provider says."""


BatchOutcome = Submission | ProviderError


class StatusQuery(BaseModel):
    """A message whose receipt never came: what a provider's status API is asked with."""

    message_id: str
    to: str
    provider_message_id: str | None
    sent_at: datetime
    """No later than the provider took it (the message row's creation)."""


class Delivery(BaseModel):
    """A final status that a provider's status API reports, as a receipt would have."""

    status: MessageStatus
    error_code: str | None = None
    at: datetime | None = None
    raw: dict[str, Any] = Field(default_factory=dict)
    """The provider's own status fields, stored with the status change (never a number)."""


class Provider(Protocol):
    """Send messages, or find one sent earlier by its client reference.

    ``send`` raises a ``ProviderError`` subclass for a definite refusal; anything else (a
    timeout, a dropped connection) is ambiguous and is reconciled with ``lookup`` first.
    """

    name: str
    batch_limit: int
    lookup_grace: float
    """Seconds after a lost answer before ``lookup`` finding nothing proves nothing was sent."""

    async def send(self, sms: OutboundSms) -> Submission: ...

    async def send_batch(self, batch: Sequence[OutboundSms]) -> list[BatchOutcome]:
        """Send many with the provider's batch API; one outcome per message, in order."""
        ...

    def requests(self, batch: Sequence[OutboundSms]) -> int:
        """How many requests ``send_batch(batch)`` makes: what the route's rate limit counts."""
        ...

    async def lookup(self, sms: OutboundSms, *, since: datetime) -> Submission | None: ...

    async def fetch_status(self, query: StatusQuery) -> Delivery | None:
        """The message's final status from the provider's status API; None while it has none."""
        ...
