"""Connecting to Temporal, the same way everywhere: the pydantic data converter, its payloads sealed
by the codec (``nudge.codec``)."""

from __future__ import annotations

import asyncio
import dataclasses

from temporalio.client import Client
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import Runtime

from nudge.codec import EncryptionCodec, parse_keys
from nudge.converter import data_converter
from nudge.errors import ConfigurationError
from nudge.settings import Settings


def sealed_converter(keys: str) -> DataConverter:
    """The data converter with its payloads sealed by ``keys`` (``id:base64,...``, newest first)."""
    # Failure messages and stack traces go into the sealed payload too: a provider's error text
    # may quote the message (the SDK's default leaves them plain in history).
    return dataclasses.replace(
        data_converter,
        payload_codec=EncryptionCodec(parse_keys(keys)),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def converter_for(settings: Settings) -> DataConverter:
    """The data converter every client and worker of ``settings`` uses.

    Raises:
        ConfigurationError: no codec keys (``NUDGE_CODEC_KEYS``, or the state dir's from ``nudge up``).
    """
    keys = settings.codec_key_text()
    if not keys:
        raise ConfigurationError(
            "Temporal payloads are sealed, and no codec key is set: set NUDGE_CODEC_KEYS "
            "(`nudge codec new-key ID` makes one) or start the local stack "
            f"(`nudge up` writes {settings.codec_keys_path})"
        )
    return sealed_converter(keys)


async def connect(settings: Settings, *, wait: float = 0.0, runtime: Runtime | None = None) -> Client:
    """Connect to Temporal; with ``wait``, keep trying that many seconds while it starts. A
    ``runtime`` of its own carries the SDK's telemetry (the worker's Prometheus metrics)."""
    converter = converter_for(settings)
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=converter,
                runtime=runtime,
            )
        except RuntimeError:
            if asyncio.get_running_loop().time() >= deadline:
                raise
            await asyncio.sleep(0.5)
