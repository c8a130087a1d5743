"""The stream out: the dispatcher the gateway runs, delivering the outbox to each sink.

- ``dispatcher``: the loop per sink, claims, retries with backoff, the retention sweep.
- ``webhook``: the signed webhook sink; ``broker``: the Redis stream sink.
- ``sink``: what a sink's delivery is, and ``DeliveryFailed``.
"""

from starter.stream.broker import RedisDelivery
from starter.stream.dispatcher import Pass, StreamDispatcher, backoff
from starter.stream.sink import Delivery, DeliveryFailed
from starter.stream.webhook import WebhookDelivery, encode

__all__ = [
    "Delivery",
    "DeliveryFailed",
    "Pass",
    "RedisDelivery",
    "StreamDispatcher",
    "WebhookDelivery",
    "backoff",
    "encode",
]
