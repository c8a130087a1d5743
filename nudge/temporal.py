"""Connecting to Temporal, the same way everywhere: the pydantic data converter, its payloads sealed
by the codec (``nudge.codec``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import threading

from temporalio.client import Client
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import Runtime

from nudge.codec import EncryptionCodec, parse_keys
from nudge.converter import data_converter
from nudge.errors import ConfigurationError
from nudge.settings import Settings

# Whether this process has tried to connect a client: the SDK's core threads then outlive the loop.
_connected = threading.Event()


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
    _connected.set()  # an attempt starts the SDK's runtime and its threads, connected or not
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


def tried_to_connect() -> bool:
    """Whether this process has tried to connect to Temporal (see ``exit_without_teardown``)."""
    return _connected.is_set()


def exit_without_teardown(code: int) -> None:
    """End the process with ``code`` at once if it has tried to connect to Temporal; else return.

    The SDK's core threads may call back into Python while the interpreter finalizes, and
    CPython then aborts the process (``PyGILState_Release: thread state ... must be current``,
    exit -6, temporalio/sdk-python#300): about one short ``nudge journeys`` in 150 did on a loaded
    machine. Ending without the teardown cannot race them. Log handlers and standard streams are
    flushed first, so no line is lost; the work itself is done by then (workers have shut down,
    sessions are closed).
    """
    if not tried_to_connect():
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (``| head``) or a closed stream: nothing is left to keep.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
