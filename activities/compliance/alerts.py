"""Alerts posted as JSON to an operator's webhook (``NUDGE_ALERT_WEBHOOK_URL``).

Posting happens in the background: the request that raised the alert (a reply, a receipt, a send)
never waits for the webhook, and a webhook that is down only costs a logged error. Each alert is
tried a few times with backoff; ``aclose`` gives the ones in flight a moment on shutdown and then
cancels them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from nudge.logging import get_logger

log = get_logger(__name__)
TIMEOUT = httpx.Timeout(5.0, connect=2.0)


class AlertWebhook:
    """Posts alerts to one URL; with an empty URL, ``post`` does nothing (the log has the alert)."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        attempts: int = 4,
        backoff: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._url = url
        # The URL often carries a secret (a Slack or PagerDuty token): logs name the host only.
        self._host = urlsplit(url).hostname or "?"
        self._own_client = client is None and bool(url)
        self._client = client or (httpx.AsyncClient(timeout=TIMEOUT) if url else None)
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep
        self._tasks: set[asyncio.Task[bool]] = set()

    def post(self, alert: Mapping[str, Any]) -> asyncio.Task[bool] | None:
        """Post ``alert`` in the background; the task answers whether the webhook took it."""
        if self._client is None:
            return None
        task = asyncio.create_task(self._deliver(dict(alert)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver(self, alert: dict[str, Any]) -> bool:
        assert self._client is not None
        name = alert.get("alert")
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._client.post(self._url, json=alert)
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            else:
                if response.is_success:
                    log.info("alert_posted", alert=name, host=self._host, attempt=attempt)
                    return True
                problem = f"HTTP {response.status_code}"
                if response.is_client_error and response.status_code not in (408, 429):
                    break  # the webhook refuses this alert: trying again cannot help
            log.warning("alert_post_failed", alert=name, host=self._host, attempt=attempt, problem=problem)
            if attempt < self._attempts:
                await self._sleep(self._backoff * 2 ** (attempt - 1))
        log.error("alert_undelivered", alert=name, host=self._host, problem=problem)
        return False

    async def aclose(self, *, grace: float = 5.0) -> None:
        """Let alerts in flight finish for up to ``grace`` seconds, cancel the rest, close the client."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
                log.error("alerts_dropped_on_shutdown", count=len(pending), host=self._host)
        if self._own_client and self._client is not None:
            await self._client.aclose()
