"""Adapter for the local carrier simulator's native JSON API (``simulator/``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import httpx

from activities.providers.base import BatchOutcome, Delivery, OutboundSms, StatusQuery, Submission
from nudge.errors import PermanentProviderError, ProviderError, RetryableProviderError
from nudge.models import MessageStatus

FINAL = {"delivered": MessageStatus.DELIVERED, "undelivered": MessageStatus.UNDELIVERED}
PERMANENT_CODES = frozenset({"invalid_number", "blocked_content", "unknown_sender"})


class SimulatorProvider:
    """Talks to ``simulator.app`` over HTTP; ``status_callback`` is where receipts go."""

    name = "simulator"
    batch_limit = 100
    lookup_grace = 0.0
    """Seconds after a lost answer before "not found" means "not sent".

    The simulator lists a message the moment it accepts it.
    """

    def __init__(
        self, client: httpx.AsyncClient, *, base_url: str, status_callback: str | None = None
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._status_callback = status_callback

    async def send(self, sms: OutboundSms) -> Submission:
        response = await self._client.post(
            f"{self._base_url}/v1/messages",
            json={
                "client_ref": sms.message_id,
                "to": sms.to,
                "from": sms.signature,
                "body": sms.body,
                "status_callback": sms.status_callback or self._status_callback,
            },
        )
        if response.status_code in (200, 201, 202):
            data = response.json()
            return Submission(
                provider=self.name, provider_message_id=data["id"], segments=data.get("segments", 1)
            )
        code, message = self._error(response)
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableProviderError(
                message,
                code=code,
                provider=self.name,
                ambiguous=response.status_code >= 500,
                throttled=response.status_code == 429,
            )
        if code in PERMANENT_CODES or 400 <= response.status_code < 500:
            raise PermanentProviderError(
                message, code=code, provider=self.name, unreachable=code == "invalid_number"
            )
        raise RetryableProviderError(message, code=code, provider=self.name)

    async def send_batch(self, batch: Sequence[OutboundSms]) -> list[BatchOutcome]:
        async def one(sms: OutboundSms) -> BatchOutcome:
            try:
                return await self.send(sms)
            except ProviderError as exc:
                return exc

        return list(await asyncio.gather(*(one(sms) for sms in batch)))

    def requests(self, batch: Sequence[OutboundSms]) -> int:
        return len(batch)

    async def lookup(self, sms: OutboundSms, *, since: datetime) -> Submission | None:
        response = await self._client.get(
            f"{self._base_url}/v1/messages", params={"client_ref": sms.message_id}
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data = response.json()
        return Submission(
            provider=self.name, provider_message_id=data["id"], segments=data.get("segments", 1)
        )

    async def fetch_status(self, query: StatusQuery) -> Delivery | None:
        """The native API's message by client reference: ``delivered`` or ``undelivered`` once the
        simulated carrier has reported it."""
        response = await self._client.get(
            f"{self._base_url}/v1/messages", params={"client_ref": query.message_id}
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        status = FINAL.get(str(response.json().get("status")))
        if status is None:
            return None
        code = "undelivered" if status is MessageStatus.UNDELIVERED else None
        return Delivery(status=status, error_code=code, raw={"status": status.value})

    @staticmethod
    def _error(response: httpx.Response) -> tuple[str, str]:
        try:
            data = response.json()
        except ValueError:
            return str(response.status_code), response.text[:200]
        # The simulator is a FastAPI app: its errors arrive as {"detail": {"code", "message"}},
        # and request validation errors as {"detail": [...]}.
        detail = data.get("detail", data) if isinstance(data, dict) else data
        if isinstance(detail, dict):
            return str(detail.get("code", response.status_code)), str(detail.get("message", ""))
        return str(response.status_code), str(detail)[:200]
