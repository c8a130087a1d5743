"""The worker: runs the journeys and the activities, with their dependencies injected."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack

import httpx
from httpx_aiohttp import AiohttpTransport
from temporalio.client import Client
from temporalio.worker import Worker

from activities.crm import CrmActivities
from activities.providers.simulator import SimulatorProvider
from activities.send import SendActivities
from nudge.logging import configure_logging, get_logger
from nudge.settings import Settings, get_settings
from nudge.store import create_engine, init_db, session_factory
from starter.temporal import connect
from workflows import JOURNEYS
from workflows.runtime import Journey

log = get_logger("worker")


def provider_client(settings: Settings) -> httpx.AsyncClient:
    """The providers' HTTP client: httpx's API on aiohttp's transport, which holds up at high
    concurrency where httpx's own pool slows down (encode/httpx#3215)."""
    timeout = httpx.Timeout(settings.send_timeout.total_seconds(), connect=5.0)
    return httpx.AsyncClient(transport=AiohttpTransport(), timeout=timeout)


async def build_worker(
    client: Client,
    settings: Settings,
    stack: AsyncExitStack,
    *,
    journeys: Sequence[type[Journey]] = JOURNEYS,
) -> Worker:
    engine = create_engine(settings.sqlalchemy_url)
    stack.push_async_callback(engine.dispose)
    await init_db(engine)
    sessions = session_factory(engine)
    http = await stack.enter_async_context(provider_client(settings))
    provider = SimulatorProvider(
        http,
        base_url=settings.carrier_url,
        status_callback=f"{settings.gateway_url}/v1/webhooks/simulator/status",
    )
    sends = SendActivities(sessions, provider, link_base_url=settings.gateway_url, sender=settings.sender_id)
    crm = CrmActivities(sessions)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(journeys),
        activities=[sends.send_message, crm.get_profile],
        max_concurrent_activities=200,
    )


async def main() -> None:
    settings = get_settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    client = await connect(settings, wait=60)
    async with AsyncExitStack() as stack:
        worker = await build_worker(client, settings, stack)
        log.info("worker_started", task_queue=settings.task_queue, journeys=[j.name for j in JOURNEYS])
        await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
