"""The webhook sink: a batch of events POSTed as ``{"events": [...]}``, signed with the sink's
secret (``Nudge-Signature``, ``nudge.stream_signature``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from nudge.sinks import StreamWebhook
from nudge.stream_signature import HEADER, sign

from .sink import DeliveryFailed

USER_AGENT = "nudge-stream/1"


def encode(events: Sequence[Mapping[str, Any]]) -> bytes:
    """The request body: the bytes the signature covers, exactly as sent; strict JSON (a NaN or
    an infinity raises ``ValueError`` instead of going out as a token no JSON parser takes)."""
    body = {"events": list(events)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def host_of(url: str) -> str:
    """What logs name of a webhook: its host, never the rest (the URL may carry a token)."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


class WebhookDelivery:
    """POSTs batches to one webhook over a shared client (whose timeout bounds each request)."""

    def __init__(
        self, config: StreamWebhook, *, client: httpx.AsyncClient, clock: Callable[[], float] = time.time
    ) -> None:
        self._config = config
        self._client = client
        self._clock = clock
        self.host = host_of(config.url)
        """What logs name: the URL may carry a token."""

    @property
    def config(self) -> StreamWebhook:
        return self._config

    async def deliver(self, events: Sequence[Mapping[str, Any]]) -> None:
        try:
            body = encode(events)
        except (TypeError, ValueError) as exc:  # not JSON: sending it again cannot help
            message = f"{self.host}: not JSON ({type(exc).__name__})"
            raise DeliveryFailed(message, sink=self._config.name, permanent=True) from exc
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            HEADER: sign(self._config.secret.get_secret_value(), body, timestamp=int(self._clock())),
        }
        try:
            response = await self._client.post(self._config.url, content=body, headers=headers)
        except Exception as exc:  # noqa: BLE001 - httpx.HTTPError, or InvalidURL, or anything: retried
            # Only the error's name: its text may quote the URL, and the URL may carry a token.
            raise DeliveryFailed(f"{self.host}: {type(exc).__name__}", sink=self._config.name) from exc
        if not response.is_success:
            status = response.status_code
            raise DeliveryFailed(f"{self.host}: HTTP {status}", sink=self._config.name, status=status)

    async def aclose(self) -> None:
        """Nothing of its own: the client is shared, and closed by whoever made it."""
