"""A small typed client for Nudge's gateway, for the services that feed it: ``track`` an event,
``identify`` a customer, and batches flushed in the background for high-volume senders.

    from nudge.client import Nudge

    with Nudge("http://127.0.0.1:8000", api_key="nk_...") as nudge:
        nudge.identify({"id": "c42", "name": "Ada", "phone": "+8613800138000"})
        nudge.track("c42", "cart_abandoned", {"cart_id": "k1", "items": 2}, event_id="cart-k1")
        with nudge.batch() as batch:          # /v1/events:batch, 100 at a time or every second
            batch.track("c42", "page_viewed", {"path": "/sale"})

``AsyncNudge`` is the same with ``await``. Connection errors, 429 and 5xx are retried with backoff
(0.25 s doubling to 5 s, 5 times by default), always with the same ``event_id``: the gateway
stores an event once by its id, so a retry never counts twice. A 4xx raises ``Refused`` with the
gateway's reason; retries used up raise ``Unavailable``.
"""

from __future__ import annotations

from nudge.client.aio import AsyncBatch, AsyncNudge
from nudge.client.sync import Batch, Nudge
from nudge.client.wire import BATCH_LIMIT, Accepted, ClientError, Refused, Retry, Unavailable, event_body

__all__ = [
    "BATCH_LIMIT",
    "Accepted",
    "AsyncBatch",
    "AsyncNudge",
    "Batch",
    "ClientError",
    "Nudge",
    "Refused",
    "Retry",
    "Unavailable",
    "event_body",
]
