"""What the dispatcher delivers through: a sink's delivery, and the error a failed one raises."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from nudge.errors import NudgeError
from nudge.sinks import StreamSink


class DeliveryFailed(NudgeError):
    """A sink did not take a batch: unreachable, too slow, or it answered other than 2xx. The
    batch is retried later; nothing is dropped."""

    def __init__(self, message: str, *, sink: str, status: int | None = None) -> None:
        super().__init__(message)
        self.sink = sink
        self.status = status
        """The HTTP status the sink answered, or None when it gave no answer."""


class Delivery(Protocol):
    """Delivers batches of events to one configured sink."""

    @property
    def config(self) -> StreamSink: ...

    async def deliver(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Hand ``events`` to the sink; return only once it has taken them all.

        Raises:
            DeliveryFailed: the sink did not take them (the whole batch is retried).
        """
        ...

    async def aclose(self) -> None:
        """Release what the delivery holds open (a shared HTTP client is its owner's to close)."""
        ...
