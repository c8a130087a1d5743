"""Twilio Programmable Messaging: create a Message, and list Messages to reconcile.

Basic auth with the account SID and auth token, form-encoded. Twilio has no client reference on a
message, so a lost answer is reconciled by listing the messages sent to the number since the send
began and matching the body (bodies carry per-message short links, so they are distinct).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from activities.providers._http import json_or_none
from activities.providers.base import BatchOutcome, Delivery, OutboundSms, StatusQuery, Submission
from nudge.errors import (
    AccountProviderError,
    DeferredProviderError,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)
from nudge.models import MessageStatus

API = "2010-04-01"
ACCOUNT_CODES = frozenset({20003, 20005, 30002, 21606})
"""Authentication failed, account not active, account suspended, From not owned: pause the route."""
OPTED_OUT = 21610
UNREACHABLE_CODES = frozenset({21211, 21612, 21614, 21635})
"""Invalid number, unreachable by SMS, not a mobile, a landline: nothing goes to it again."""
QUEUE_FULL = 21611
TWILIO_STATUS = {
    "queued": MessageStatus.SUBMITTED,
    "accepted": MessageStatus.SUBMITTED,
    "scheduled": MessageStatus.SUBMITTED,
    "sending": MessageStatus.SENT,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}
"""A message's ``status`` (in its status callback and when fetched) as ours."""


def classify(code: int | None, message: str, *, http_status: int, now: datetime) -> ProviderError:
    """Map a Twilio error code (or bare HTTP status) to Nudge's error classes."""
    label = str(code if code is not None else http_status)
    text = f"{label}: {message}" if message else label
    if code == 20429 or http_status == 429:
        # "never processed and is always safe to retry"
        return RetryableProviderError(text, code=label, provider="twilio", throttled=True)
    if code in ACCOUNT_CODES or http_status == 401:
        return AccountProviderError(text, code=label, provider="twilio")
    if code == QUEUE_FULL:
        # The sender's queue holds more than 10 hours of sends: come back later.
        return DeferredProviderError(
            text, code=label, provider="twilio", retry_at=now + timedelta(minutes=15)
        )
    if http_status >= 500:
        return RetryableProviderError(text, code=label, provider="twilio", ambiguous=True)
    return PermanentProviderError(
        text,
        code=label,
        provider="twilio",
        opted_out=code == OPTED_OUT,
        unreachable=code in UNREACHABLE_CODES,
    )


class TwilioProvider:
    """Twilio on an injected ``httpx.AsyncClient``; ``base_url`` defaults to the public endpoint."""

    name = "twilio"
    batch_limit = 50
    lookup_grace = 30.0
    """Seconds after a lost answer before "not found" means "not sent".

    A new message shows in the list at once; allow for clock skew and paging.
    """
    """Twilio has no batch API; a batch is this many concurrent creates."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        account_sid: str,
        auth_token: str,
        messaging_service_sid: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._messages_url = f"{base_url.rstrip('/')}/{API}/Accounts/{account_sid}/Messages.json"
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._service = messaging_service_sid
        self._clock = clock

    async def send(self, sms: OutboundSms) -> Submission:
        form = {"To": sms.to, "Body": sms.body}
        if self._service:
            form["MessagingServiceSid"] = self._service
        if sms.signature and (not self._service or sms.signature.startswith("+")):
            form["From"] = sms.signature
        if sms.status_callback:
            form["StatusCallback"] = sms.status_callback
        response = await self._client.post(
            self._messages_url, data=form, auth=self._auth, headers={"accept": "application/json"}
        )
        data = self._check(response)
        return _submission(data)

    def requests(self, batch: Sequence[OutboundSms]) -> int:
        return len(batch)

    async def send_batch(self, batch: Sequence[OutboundSms]) -> list[BatchOutcome]:
        async def one(sms: OutboundSms) -> BatchOutcome:
            try:
                return await self.send(sms)
            except ProviderError as exc:
                return exc

        outcomes: list[BatchOutcome] = []
        for start in range(0, len(batch), self.batch_limit):
            outcomes.extend(
                await asyncio.gather(*(one(sms) for sms in batch[start : start + self.batch_limit]))
            )
        return outcomes

    async def lookup(self, sms: OutboundSms, *, since: datetime) -> Submission | None:
        response = await self._client.get(
            self._messages_url,
            # No DateSent filter: a message still queued has no date_sent. Newest come first.
            params={"To": sms.to, "PageSize": "100"},
            auth=self._auth,
            headers={"accept": "application/json"},
        )
        data = self._check(response)
        for message in data.get("messages", []):
            created = message.get("date_created")
            recent = created is not None and parsedate_to_datetime(created) >= since
            if message.get("body") == sms.body and recent:
                return _submission(message)
        return None

    async def fetch_status(self, query: StatusQuery) -> Delivery | None:
        """Fetch the message by its SID: ``delivered`` (or ``read``), ``undelivered``, ``failed``
        and ``canceled`` are final; anything else is still on its way."""
        if not query.provider_message_id:
            return None
        response = await self._client.get(
            self._messages_url.removesuffix(".json") + f"/{query.provider_message_id}.json",
            auth=self._auth,
            headers={"accept": "application/json"},
        )
        if response.status_code == 404:
            return None
        data = self._check(response)
        status = TWILIO_STATUS.get(str(data.get("status")))
        if status is None or not status.terminal:
            return None
        code = data.get("error_code")
        updated = data.get("date_updated")
        return Delivery(
            status=status,
            error_code=str(code) if code is not None else None,
            at=parsedate_to_datetime(updated) if updated else None,
            raw={key: data.get(key) for key in ("status", "error_code", "date_updated")},
        )

    def _check(self, response: httpx.Response) -> dict[str, Any]:
        data = json_or_none(response)
        if response.is_success and isinstance(data, dict):
            return data
        code = data.get("code") if isinstance(data, dict) else None
        message = data.get("message", "") if isinstance(data, dict) else response.text[:200]
        raise classify(
            int(code) if code is not None else None,
            str(message),
            http_status=response.status_code,
            now=self._clock(),
        )


def _submission(data: dict[str, Any]) -> Submission:
    segments = data.get("num_segments")
    return Submission(
        provider="twilio",
        provider_message_id=str(data["sid"]),
        segments=int(segments) if segments not in (None, "", "0") else None,
    )
