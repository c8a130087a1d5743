"""End to end: a broadcast to 5,000 customers on the real stack, its worker killed twice.

The oracle is the carrier simulator's ledger (every message it accepted, number by number) and the
profiles the test stored: after two SIGKILLs of the worker in the middle of the run, each
eligible customer has exactly one message, and no suppressed or unconsented one has any.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from nudge.broadcasts import BroadcastSpec, Outcome, Progress
from nudge.phone import phone_hash
from nudge.store import Suppression, create_engine
from nudge.store.audiences import Audience, AudienceMember
from nudge.temporal import connect
from starter.stack import Stack
from tests.e2e.conftest import running_stack

pytestmark = pytest.mark.e2e

CUSTOMERS = 5000
SUPPRESSED = range(0, CUSTOMERS, 17)
"""Every 17th customer replied STOP once (294 of them)."""
UNCONSENTED = range(5, CUSTOMERS, 19)
"""Every 19th from the 5th never agreed to marketing (263; some are suppressed as well)."""


def number(i: int) -> str:
    return f"+86135{i:08d}"


async def store_customers(stack: Stack, tag: str) -> None:
    """The customers through the gateway's batch API (consent with the profile for most), the
    suppressions as the STOP replies left them, and a list audience of all of them."""
    unconsented = set(UNCONSENTED)
    consent = {"source": "signup_form", "text": "Offers by SMS. Reply STOP to opt out."}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=60) as gw:
        for start in range(0, CUSTOMERS, 1000):
            batch = [
                {"id": f"{tag}-{i:05d}", "phone": number(i)}
                | ({} if i in unconsented else {"consent": consent})
                for i in range(start, start + 1000)
            ]
            response = await gw.post("/v1/customers:batch", json={"customers": batch})
            assert response.status_code == 200, response.text
    engine = create_engine(stack.client_settings.sqlalchemy_url)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(Suppression.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "phone_hash": phone_hash(number(i)),
                        "reason": "reply:STOP",
                        "source": "aliyun",
                        "created_at": now,
                    }
                    for i in SUPPRESSED
                ],
            )
            await conn.execute(
                insert(Audience.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "name": tag,
                        "kind": "list",
                        "description": "",
                        "created_by": "e2e",
                        "updated_by": "e2e",
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
            await conn.execute(
                insert(AudienceMember.__table__),  # type: ignore[attr-defined]
                [{"audience": tag, "customer_id": f"{tag}-{i:05d}"} for i in range(CUSTOMERS)],
            )
    finally:
        await engine.dispose()


async def accepted(sim: httpx.AsyncClient) -> int:
    stats: dict[str, Any] = (await sim.get("/_sim/stats")).json()
    return int(stats["accepted"])


async def wait_until(check: Any, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:.0f} s")
        await asyncio.sleep(0.2)


async def test_a_broadcast_survives_two_worker_kills_with_exactly_one_message_per_eligible_customer(
    tmp_path: Path,
) -> None:
    """5,000 customers, 294 suppressed and 263 unconsented: the worker is SIGKILLed after about
    1,000 and again after about 3,000 messages reached the carrier, and restarted each time. The
    carrier's ledger then holds exactly one message per eligible customer and none for the others,
    and the broadcast's progress counts each group exactly."""
    with running_stack(tmp_path / "stack") as stack:
        tag = f"bc{uuid.uuid4().hex[:6]}"
        await store_customers(stack, tag)
        settings = stack.client_settings
        client = await connect(settings)
        spec = BroadcastSpec(
            broadcast_id=tag,
            audience=tag,
            template="welcome_back",
            params={"name": "friend", "start_url": "https://shop.example/new"},
            rate=300,
        )
        workflow_id = await stack.start_broadcast(spec)
        handle = client.get_workflow_handle(workflow_id, result_type=Progress)
        async with httpx.AsyncClient(base_url=stack.simulator_url, timeout=30) as sim:
            for mark in (1000, 3000):
                await wait_until(lambda mark=mark: _at_least(sim, mark), timeout=180)
                stack.kill_part("worker")
                killed_at = await accepted(sim)
                assert killed_at < CUSTOMERS, "the broadcast finished before the kill: it proved nothing"
                stack.start_parts("worker")
            progress = await asyncio.wait_for(handle.result(), timeout=300)
            ledger = (await sim.get("/_sim/ledger", params={"provider": "aliyun"})).json()

    excluded = set(SUPPRESSED) | set(UNCONSENTED)
    eligible = {number(i) for i in range(CUSTOMERS) if i not in excluded}
    got = Counter(entry["to"] for entry in ledger)
    assert not {n for n, k in got.items() if k > 1}, "a customer got two messages"
    assert set(got) == eligible
    assert progress.counts == {
        Outcome.SENT: len(eligible),
        Outcome.SUPPRESSED: len(SUPPRESSED),
        Outcome.NO_CONSENT: len(set(UNCONSENTED) - set(SUPPRESSED)),
    }
    assert progress.total == CUSTOMERS


async def _at_least(sim: httpx.AsyncClient, mark: int) -> bool:
    return await accepted(sim) >= mark
