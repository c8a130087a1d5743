"""The asyncio client, and its batches flushed by a task."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Self

import httpx

from nudge.client.wire import (
    BATCH_LIMIT,
    DEFAULT_RETRY,
    Accepted,
    ClientError,
    Refused,
    Retry,
    Unavailable,
    accepted,
    customer_path,
    event_body,
    headers,
    read_answer,
)


class AsyncNudge:
    """The gateway's client for asyncio (one ``httpx.AsyncClient``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retry: Retry = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers(api_key), timeout=timeout, transport=transport
        )
        self._retry = retry

    async def track(
        self,
        customer_id: str,
        name: str,
        properties: Mapping[str, Any] | None = None,
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Accepted:
        body = event_body(customer_id, name, properties, event_id, occurred_at)
        return accepted(await self._send("POST", "/v1/events", body))

    async def track_many(self, events: Sequence[Mapping[str, Any]]) -> list[Accepted]:
        answer = await self._send("POST", "/v1/events:batch", {"events": list(events)})
        return [accepted(result) for result in answer["results"]]

    async def identify(self, customer: Mapping[str, Any]) -> None:
        await self._send("PUT", customer_path(customer), dict(customer))

    def batch(
        self,
        *,
        max_size: int = 100,
        flush_interval: float = 1.0,
        on_refused: Callable[[list[dict[str, Any]], Refused], None] | None = None,
    ) -> AsyncBatch:
        """``Nudge.batch`` for asyncio: a task flushes it (``async with``, or ``aclose()``)."""
        return AsyncBatch(self, max_size=max_size, flush_interval=flush_interval, on_refused=on_refused)

    async def _send(self, method: str, path: str, body: Any) -> Any:
        delays = self._retry.delays()
        while True:
            try:
                answer = read_answer(await self._http.request(method, path, json=body))
                if answer is not None:
                    return answer
                why = "the gateway answered with a retryable status"
            except httpx.TransportError as exc:
                why = f"{type(exc).__name__}: {exc}"
            delay = next(delays, None)
            if delay is None:
                raise Unavailable(f"{method} {path}: {why}, after {self._retry.attempts} tries")
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


class AsyncBatch:
    """``Batch`` for asyncio: the same queue, flushed by a task of the running loop."""

    def __init__(
        self,
        client: AsyncNudge,
        *,
        max_size: int,
        flush_interval: float,
        on_refused: Callable[[list[dict[str, Any]], Refused], None] | None,
    ) -> None:
        if not 1 <= max_size <= BATCH_LIMIT:
            raise ValueError(f"max_size must be 1 to {BATCH_LIMIT}")
        self._client = client
        self._max = max_size
        self._interval = flush_interval
        self._on_refused = on_refused
        self._queue: list[dict[str, Any]] = []
        self._refused: list[Refused] = []
        self._errors: list[Exception] = []
        self._wake = asyncio.Event()
        self._sending = asyncio.Lock()
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> list[dict[str, Any]]:
        return list(self._queue)

    def track(
        self,
        customer_id: str,
        name: str,
        properties: Mapping[str, Any] | None = None,
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> str:
        """Queue one event (no wait); its ``event_id``."""
        if self._closed:
            raise ClientError("the batch is closed")
        body = event_body(customer_id, name, properties, event_id, occurred_at)
        self._queue.append(body)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="nudge-batch")
        if len(self._queue) >= self._max:
            self._wake.set()
        return str(body["event_id"])

    async def flush(self) -> None:
        async with self._sending:
            while chunk := self._queue[: self._max]:
                try:
                    await self._client.track_many(chunk)
                except Refused as exc:
                    if self._on_refused is None:
                        self._refused.append(exc)
                    else:
                        self._on_refused(chunk, exc)
                del self._queue[: len(chunk)]

    async def aclose(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()
        if self._refused:
            raise self._refused[0]
        if self._errors:
            raise self._errors[0]

    async def _run(self) -> None:
        while not self._closed:
            if len(self._queue) < self._max:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            if self._closed:
                return
            try:
                await self.flush()
            except Unavailable:
                continue
            except Exception as exc:  # on_refused raised, or an answer that does not parse
                self._errors.append(exc)  # kept queued for the next round; aclose raises it
                await asyncio.sleep(self._interval)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
