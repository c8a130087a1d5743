"""The blocking client, and its batches flushed by a background thread."""

from __future__ import annotations

import threading
import time
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


class Nudge:
    """The gateway's client, blocking (one ``httpx.Client``, safe to share between threads)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retry: Retry = DEFAULT_RETRY,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url, headers=headers(api_key), timeout=timeout, transport=transport
        )
        self._retry = retry

    def track(
        self,
        customer_id: str,
        name: str,
        properties: Mapping[str, Any] | None = None,
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Accepted:
        """Send one event now; what the gateway did with it."""
        body = event_body(customer_id, name, properties, event_id, occurred_at)
        return accepted(self._send("POST", "/v1/events", body))

    def track_many(self, events: Sequence[Mapping[str, Any]]) -> list[Accepted]:
        """Send events built with ``event_body`` in one request (at most ``BATCH_LIMIT``)."""
        answer = self._send("POST", "/v1/events:batch", {"events": list(events)})
        return [accepted(result) for result in answer["results"]]

    def identify(self, customer: Mapping[str, Any]) -> None:
        """Create or replace the customer's profile (``id`` required; phone in any format the
        gateway reads, stored in E.164)."""
        self._send("PUT", customer_path(customer), dict(customer))

    def batch(
        self,
        *,
        max_size: int = 100,
        flush_interval: float = 1.0,
        on_refused: Callable[[list[dict[str, Any]], Refused], None] | None = None,
    ) -> Batch:
        """A queue of events posted in the background, ``max_size`` at a time or every
        ``flush_interval`` seconds; ``with`` (or ``close()``) sends what is left."""
        return Batch(self, max_size=max_size, flush_interval=flush_interval, on_refused=on_refused)

    def _send(self, method: str, path: str, body: Any) -> Any:
        delays = self._retry.delays()
        while True:
            try:
                answer = read_answer(self._http.request(method, path, json=body))
                if answer is not None:
                    return answer
                why = "the gateway answered with a retryable status"
            except httpx.TransportError as exc:
                why = f"{type(exc).__name__}: {exc}"
            delay = next(delays, None)
            if delay is None:
                raise Unavailable(f"{method} {path}: {why}, after {self._retry.attempts} tries")
            time.sleep(delay)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Batch:
    """Events queued by ``track`` and posted by a background thread. A refused batch (a 4xx: an
    event the gateway cannot take) goes to ``on_refused``, else it raises from ``close``; a gateway
    out of reach keeps the events queued for the next flush, and ``close`` raises ``Unavailable``
    with them still queued (``pending``)."""

    def __init__(
        self,
        client: Nudge,
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
        self._wake = threading.Condition()
        self._sending = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="nudge-batch", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> list[dict[str, Any]]:
        """The events not sent yet."""
        with self._wake:
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
        """Queue one event; its ``event_id``."""
        body = event_body(customer_id, name, properties, event_id, occurred_at)
        with self._wake:
            if self._closed:
                raise ClientError("the batch is closed")
            self._queue.append(body)
            if len(self._queue) >= self._max:
                self._wake.notify()
        return str(body["event_id"])

    def flush(self) -> None:
        """Send everything queued now, in this thread."""
        with self._sending:
            while True:
                with self._wake:
                    chunk = self._queue[: self._max]
                if not chunk:
                    return
                try:
                    self._client.track_many(chunk)
                except Refused as exc:
                    if self._on_refused is None:
                        self._refused.append(exc)
                    else:
                        self._on_refused(chunk, exc)
                with self._wake:  # sent or refused: off the queue (Unavailable keeps it there)
                    del self._queue[: len(chunk)]

    def close(self) -> None:
        """Stop the thread and send what is left: ``Unavailable`` if the gateway cannot take it,
        ``Refused`` for the first batch it refused when no ``on_refused`` took it."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()
        self.flush()
        if self._refused:
            raise self._refused[0]
        if self._errors:
            raise self._errors[0]

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._closed and len(self._queue) < self._max:
                    self._wake.wait(self._interval)
                if self._closed:
                    return
            try:
                self.flush()
            except Unavailable:
                continue  # kept queued: the next round tries again
            except Exception as exc:  # on_refused raised, or an answer that does not parse
                # Kept queued and sent again next round (the gateway dedupes by event_id), and
                # ``close`` raises it: the thread never dies silently.
                self._errors.append(exc)
                with self._wake:
                    self._wake.wait(self._interval)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
