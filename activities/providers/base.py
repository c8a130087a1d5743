"""The one interface every SMS provider adapter implements."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel


class OutboundSms(BaseModel):
    """One rendered message, ready for a provider."""

    message_id: str
    """Nudge's id; sent as the provider's client reference (OutId, SessionContext, ...)."""
    to: str
    body: str
    sender: str


class Submission(BaseModel):
    """A provider accepted a message."""

    provider: str
    provider_message_id: str
    segments: int = 1


class Provider(Protocol):
    """Send a message, or find one sent earlier by its client reference.

    Adapters raise ``RetryableProviderError`` or ``PermanentProviderError``; anything else
    (a timeout, a dropped connection) is ambiguous and is reconciled with ``lookup`` first.
    """

    name: str

    async def send(self, sms: OutboundSms) -> Submission: ...

    async def lookup(self, message_id: str) -> Submission | None: ...
