"""What the dispatcher delivers through: a sink's delivery, and the error a failed one raises."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from nudge.errors import NudgeError
from nudge.sinks import StreamSink

NOT_THE_EVENTS = frozenset({401, 403, 404, 405, 407, 408, 410, 421, 425, 429})
"""4xx statuses about the sink (its credentials, its address, its load), not about what was sent:
the batch waits for the sink like after a 5xx."""


def refusal(status: int | None) -> bool:
    """Is ``status`` a receiver refusing what it was sent, for good (400, 413, 422...)?"""
    return status is not None and 400 <= status < 500 and status not in NOT_THE_EVENTS


class DeliveryFailed(NudgeError):
    """A sink did not take a batch: unreachable, too slow, or it answered other than 2xx. The
    batch is retried later; nothing is dropped.

    ``permanent``: the sink refused the batch's content, for good (``refusal``), and sending it
    again as it is cannot help: the dispatcher splits it to find the events it refuses.
    """

    def __init__(
        self, message: str, *, sink: str, status: int | None = None, permanent: bool | None = None
    ) -> None:
        super().__init__(message)
        self.sink = sink
        self.status = status
        """The HTTP status the sink answered, or None when it gave no answer."""
        self.permanent = refusal(status) if permanent is None else permanent


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
