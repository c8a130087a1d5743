"""The broker sink: each event appended to a Redis stream (``XADD``) as ``id``, ``kind`` and the
JSON ``event``; a batch goes in one pipeline round trip. Redis assigns the entry ids, so a batch
sent again adds entries again: consumers deduplicate by the ``id`` field, as webhook receivers do."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from nudge.sinks import StreamBroker

from .sink import DeliveryFailed


def encode(event: Mapping[str, Any]) -> str:
    """An entry's ``event`` field: strict JSON (a NaN or an infinity raises ``ValueError``)."""
    return json.dumps(event, ensure_ascii=False, allow_nan=False)


class RedisDelivery:
    """Appends batches to one Redis stream; ``timeout`` bounds connecting and each reply."""

    def __init__(self, config: StreamBroker, *, timeout: float = 10.0) -> None:
        self._config = config
        self._redis = Redis.from_url(
            config.url.get_secret_value(), socket_timeout=timeout, socket_connect_timeout=min(timeout, 5.0)
        )

    @property
    def config(self) -> StreamBroker:
        return self._config

    async def deliver(self, events: Sequence[Mapping[str, Any]]) -> None:
        pipeline = self._redis.pipeline(transaction=False)
        try:
            entries: list[dict[FieldT, EncodableT]] = [
                {"id": event["id"], "kind": event["kind"], "event": encode(event)} for event in events
            ]
        except (KeyError, TypeError, ValueError) as exc:  # not JSON: sending it again cannot help
            message = f"redis: not JSON ({type(exc).__name__})"
            raise DeliveryFailed(message, sink=self._config.name, permanent=True) from exc
        for fields in entries:
            pipeline.xadd(self._config.stream, fields, maxlen=self._config.maxlen, approximate=True)
        try:
            await pipeline.execute()
        except Exception as exc:  # noqa: BLE001 - RedisError, OSError or anything else: retried
            # The URL may hold a password: name the error, never the URL.
            raise DeliveryFailed(f"redis: {type(exc).__name__}", sink=self._config.name) from exc

    async def aclose(self) -> None:
        await self._redis.aclose()
