"""The data converter Nudge's client and workers use: the SDK's pydantic converter, built once.

The SDK builds a fresh payload converter from its class for every workflow run it activates, and a
fresh ``PydanticPayloadConverter`` starts with an empty ``TypeAdapter`` cache: each run then
rebuilt the adapters for ``JourneyInput``, ``Event``, ``SendResult``... (a measurable share of
the worker's CPU). This class hands every instance the same component converters, so the cache
(a thread-safe ``functools.lru_cache``) stays warm. The wire format is the pydantic converter's.
"""

from __future__ import annotations

from typing import ClassVar

from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import CompositePayloadConverter, DataConverter, EncodingPayloadConverter


class SharedPydanticPayloadConverter(PydanticPayloadConverter):
    _components: ClassVar[tuple[EncodingPayloadConverter, ...] | None] = None

    def __init__(self) -> None:
        shared = SharedPydanticPayloadConverter._components
        if shared is None:
            super().__init__()
            SharedPydanticPayloadConverter._components = tuple(self.converters.values())
        else:
            CompositePayloadConverter.__init__(self, *shared)


data_converter = DataConverter(payload_converter_class=SharedPydanticPayloadConverter)
"""Pass as ``data_converter`` to ``Client.connect``; workers take it from their client."""
