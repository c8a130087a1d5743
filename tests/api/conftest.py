from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from nudge.apikeys import Scope
from nudge.routes import RouteConfig, local_routes
from nudge.settings import Settings
from nudge.store import JourneyEntry, session_factory
from starter.api import create_app
from starter.api.services.keys import ApiKeys
from starter.testing import FakeCarrier
from tests.servers import serve
from workflows import JOURNEYS


@dataclass
class Gateway:
    """The gateway over loopback HTTP, its store, and the worker behind it."""

    http: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    client: Client
    task_queue: str
    carrier: FakeCarrier


@pytest.fixture
def gateway_settings(db_url: str) -> Settings:
    """The gateway's settings; a test module overrides this fixture to change them."""
    task_queue = f"gateway-{uuid.uuid4().hex[:12]}"
    # Everything the tests rely on is explicit, so a developer's NUDGE_* variables cannot change it.
    return Settings(
        database_url=db_url,
        task_queue=task_queue,
        transactional_task_queue=task_queue,
        default_region="CN",
        journey_overrides={},
        # The local simulator's routes, plus its native API, whose receipt endpoint some tests use.
        routes=[*local_routes("http://127.0.0.1:9"), RouteConfig(name="sim", provider="simulator")],
    )


@pytest.fixture
async def gateway(
    env: WorkflowEnvironment, engine: AsyncEngine, gateway_settings: Settings
) -> AsyncIterator[Gateway]:
    """The real gateway app served on loopback, with a worker running the real journeys against a
    fake carrier on a task queue of its own."""
    task_queue = gateway_settings.task_queue
    carrier = FakeCarrier()
    sessions = session_factory(engine)
    app = create_app(gateway_settings, client=env.client)
    worker = Worker(
        env.client,
        task_queue=task_queue,
        workflows=list(JOURNEYS),
        activities=[carrier.send_message, carrier.get_profile, carrier.assign_variant],
    )
    # Every request of a test goes with an admin key unless the test says otherwise (tests/api/test_auth.py).
    admin, _ = await ApiKeys(sessions, cache_ttl=timedelta(0)).create("tests", [Scope.ADMIN], by="conftest")
    headers = {"Authorization": f"Bearer {admin}"}
    async with (
        worker,
        serve(app) as url,
        # httpx's 5 s default: one slow answer on a loaded 2-core machine failed a test.
        httpx.AsyncClient(base_url=url, trust_env=False, headers=headers, timeout=30) as http,
    ):
        try:
            yield Gateway(
                http=http, sessions=sessions, client=env.client, task_queue=task_queue, carrier=carrier
            )
        finally:
            # A journey left running on this soon-dead task queue would stop the shared test server
            # from skipping time for later tests.
            async with sessions() as session:
                entries = (await session.exec(select(JourneyEntry))).all()
            for entry in entries:
                with contextlib.suppress(RPCError):
                    await env.client.get_workflow_handle(entry.workflow_id).terminate("test finished")


@pytest.fixture
def customer_id() -> str:
    """A customer id no other test uses: workflow ids live as long as the shared test server."""
    return f"cust-{uuid.uuid4().hex[:10]}"
