"""``nudge setup`` as a deploy runs it (its own process) against a real dev server: it migrates,
registers the search attributes in a namespace that has none, makes one admin key, and on a second
run changes nothing. Through a mutual-TLS front (a cluster's or Temporal Cloud's), it presents the
client certificate and the API key, and without the certificate it is refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from nudge.codec import new_key
from nudge.contracts import SEARCH_ATTRIBUTES
from nudge.store import create_engine, session_factory
from nudge.store.schema import current, head
from starter.api.services.keys import ApiKeys
from starter.stack import Stack
from tests.tls_proxy import make_certificates, mutual_tls_front

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


async def fresh_namespace(address: str) -> str:
    """A namespace of its own, with none of Nudge's search attributes yet."""
    client = await Client.connect(address)
    name = f"setup-{uuid.uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=Duration(seconds=86400))
    )
    for _ in range(100):  # the frontend's namespace cache learns it within seconds
        try:
            await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name))
            return name
        except RPCError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"namespace {name} never appeared")


async def custom_attributes(address: str, namespace: str) -> dict[str, int]:
    client = await Client.connect(address, namespace=namespace)
    found = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return dict(found.custom_attributes)


async def setup(state_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "starter.cli", "setup", *args],
        env={**clean, "NUDGE_STATE_DIR": str(state_dir), "NUDGE_CODEC_KEYS": new_key("setup"), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


async def test_setup_migrates_registers_and_makes_one_admin_key_then_changes_nothing(
    temporal: Stack, tmp_path: Path
) -> None:
    namespace = await fresh_namespace(temporal.temporal_address)
    assert not set(SEARCH_ATTRIBUTES) & set(await custom_attributes(temporal.temporal_address, namespace))
    env = {"NUDGE_TEMPORAL_ADDRESS": temporal.temporal_address, "NUDGE_TEMPORAL_NAMESPACE": namespace}

    first = await setup(tmp_path, **env)
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip().splitlines()[-1]
    assert key.startswith("nk_") and "shown once" in first.stderr
    assert f"migrated base -> {head()}" in first.stdout
    keyword = IndexedValueType.Value("INDEXED_VALUE_TYPE_KEYWORD")
    registered = await custom_attributes(temporal.temporal_address, namespace)
    assert {name: registered.get(name) for name in SEARCH_ATTRIBUTES} == dict.fromkeys(
        SEARCH_ATTRIBUTES, keyword
    )

    again = await setup(tmp_path, **env)
    assert again.returncode == 0, again.stderr
    assert "search attributes already registered" in again.stdout
    assert "one exists already" in again.stdout and "nk_" not in again.stdout

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'nudge.db'}")
    try:
        assert await current(engine) == head()
        keys = ApiKeys(session_factory(engine), cache_ttl=timedelta(seconds=0))
        caller = await keys.authenticate(key)
        assert caller is not None and "admin" in caller.scopes
        assert len(await keys.list()) == 1
    finally:
        await engine.dispose()


async def test_setup_reaches_temporal_through_mutual_tls_with_an_api_key(
    temporal: Stack, tmp_path: Path
) -> None:
    """The front sees the client certificate's name and the bearer key; without the certificate
    it refuses the handshake and setup exits 1 with the reason."""
    certs = make_certificates(tmp_path / "certs", client_name="nudge-worker")
    async with mutual_tls_front(certs, temporal.ports.temporal) as (port, seen):
        tls = {
            "NUDGE_TEMPORAL_ADDRESS": f"localhost:{port}",
            "NUDGE_TEMPORAL_TLS_CA": str(certs.ca),
            "NUDGE_TEMPORAL_API_KEY": "test-cloud-key",
        }
        done = await setup(
            tmp_path / "state",
            "--key-file",
            str(tmp_path / "admin.key"),
            **tls,
            NUDGE_TEMPORAL_TLS_CERT=str(certs.client_cert),
            NUDGE_TEMPORAL_TLS_KEY=str(certs.client_key),
        )
        assert done.returncode == 0, done.stderr
        assert "nudge-worker" in seen.clients
        assert "Bearer test-cloud-key" in seen.headers.get("authorization", [])
        assert (tmp_path / "admin.key").read_text().startswith("nk_")
        assert (tmp_path / "admin.key").stat().st_mode & 0o077 == 0

        through = (len(seen.clients), len(seen.headers[":path"]))
        refused = await setup(tmp_path / "state", "--temporal-wait", "0", **tls)
        assert refused.returncode == 1, refused.stderr
        assert f"cannot reach Temporal at localhost:{port}" in " ".join(refused.stderr.split())
        assert (len(seen.clients), len(seen.headers[":path"])) == through
