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
from temporalio.service import TLSConfig

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


def tls_for(settings: Settings) -> bool | TLSConfig:
    """The TLS a client of ``settings`` uses: none for the dev server; the system's roots for
    Temporal Cloud with an API key; a client certificate (and a private CA) for mutual TLS.

    Raises:
        ConfigurationError: a certificate without its key (or the other way round), or a file
            that cannot be read, named.
    """
    cert, key, ca = settings.temporal_tls_cert, settings.temporal_tls_key, settings.temporal_tls_ca
    if (cert is None) != (key is None):
        raise ConfigurationError(
            "NUDGE_TEMPORAL_TLS_CERT and NUDGE_TEMPORAL_TLS_KEY go together: set both, or neither"
        )
    wanted = settings.temporal_tls
    if wanted is None:
        wanted = cert is not None or bool(settings.temporal_api_key.get_secret_value())
    if not wanted:
        if cert is not None or ca is not None:
            raise ConfigurationError("NUDGE_TEMPORAL_TLS is false, yet a TLS certificate is set")
        if settings.temporal_api_key.get_secret_value():
            raise ConfigurationError("NUDGE_TEMPORAL_TLS is false: the API key would be sent in clear text")
        return False
    files = {}
    for name, path in (
        ("NUDGE_TEMPORAL_TLS_CERT", cert),
        ("NUDGE_TEMPORAL_TLS_KEY", key),
        ("NUDGE_TEMPORAL_TLS_CA", ca),
    ):
        if path is not None:
            try:
                files[name] = path.read_bytes()
            except OSError as exc:
                raise ConfigurationError(f"{name}: cannot read {path} ({exc.strerror})") from None
    return TLSConfig(
        server_root_ca_cert=files.get("NUDGE_TEMPORAL_TLS_CA"),
        client_cert=files.get("NUDGE_TEMPORAL_TLS_CERT"),
        client_private_key=files.get("NUDGE_TEMPORAL_TLS_KEY"),
        domain=settings.temporal_tls_server_name or None,
    )


async def connect(settings: Settings, *, wait: float = 0.0, runtime: Runtime | None = None) -> Client:
    """Connect to Temporal; with ``wait``, keep trying that many seconds while it starts. A
    ``runtime`` of its own carries the SDK's telemetry (the worker's Prometheus metrics)."""
    converter = converter_for(settings)
    tls = tls_for(settings)
    api_key = settings.temporal_api_key.get_secret_value() or None
    deadline = asyncio.get_running_loop().time() + wait
    _connected.set()  # an attempt starts the SDK's runtime and its threads, connected or not
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=converter,
                tls=tls,
                api_key=api_key,
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


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register Nudge's search attributes (``SEARCH_ATTRIBUTES``) in the client's namespace
    through the operator service; answers the ones it added (none when all were there).

    Raises:
        ConfigurationError: one exists with another type; or the server does not let this client
            add them (Temporal Cloud: they are added with ``tcld`` or in its UI), with the list.
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
    from temporalio.service import RPCError, RPCStatusCode

    from nudge.contracts import SEARCH_ATTRIBUTES

    wanted = {
        name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
        for name, kind in SEARCH_ATTRIBUTES.items()
    }
    listing = ", ".join(f"{name}={kind}" for name, kind in SEARCH_ATTRIBUTES.items())

    def refused(exc: RPCError) -> ConfigurationError:
        return ConfigurationError(
            f"Temporal refused to register search attributes in {client.namespace!r} ({exc}); "
            f"add them yourself (Temporal Cloud: `tcld namespace search-attributes add` or its "
            f"UI): {listing}"
        )

    missing = dict(wanted)
    try:
        found = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.PERMISSION_DENIED:
            raise refused(exc) from None
        if exc.status != RPCStatusCode.UNIMPLEMENTED:  # the Java test server lists none: add all
            raise
    else:
        have = {**found.system_attributes, **found.custom_attributes}
        wrong = sorted(name for name, kind in wanted.items() if name in have and have[name] != kind)
        if wrong:
            raise ConfigurationError(
                f"search attributes {', '.join(wrong)} exist in namespace {client.namespace!r} "
                f"with another type; Nudge needs {listing}"
            )
        missing = {name: kind for name, kind in wanted.items() if name not in have}
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.ALREADY_EXISTS or "already" in str(exc).lower():
            return []
        if exc.status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED):
            raise refused(exc) from None
        raise
    return sorted(missing)
