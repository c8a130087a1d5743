"""Three worker processes, one set of route limits (``NUDGE_SHARED_ROUTE_LIMITS``): judged from the
carrier simulator's ledger, they send on a route at no more than its ``tps`` together, and a
breaker that one of them opens keeps all three off the route.

The tolerance on the rate: the limit allows a burst of ``max(1, tps / 10)`` requests after an
idle spell, so over the run the combined rate stays within 15 % of ``tps`` and any two seconds
hold at most ``2 * tps + 2`` sends; three workers pacing on their own would send at 3 x tps.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from nudge.routes import DEV_ALIYUN_KEYS, local_routes
from starter.demo import DEMO_OVERRIDES, PLAYGROUND_ENV
from starter.stack import Ports, Stack
from tests.e2e.test_cart_journey import _customer_event

pytestmark = pytest.mark.e2e
TPS = 8
PAYMENTS = 64
PRIMARY_KEY = next(iter(DEV_ALIYUN_KEYS))


def routes_json(simulator_url: str) -> str:
    routes = local_routes(simulator_url)
    for route in routes:
        route.tps = TPS if route.name == "aliyun-cn" else 200
    return json.dumps(
        [route.model_dump(exclude_none=True) for route in routes],
        default=lambda value: value.get_secret_value() if hasattr(value, "get_secret_value") else str(value),
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    ports = Ports.free()
    stack = Stack(
        state_dir=tmp_path_factory.mktemp("workers"),
        ports=ports,
        env_overrides={
            "NUDGE_JOURNEY_OVERRIDES": json.dumps(DEMO_OVERRIDES),
            "NUDGE_QUIET_HOURS": PLAYGROUND_ENV["NUDGE_QUIET_HOURS"],
            "NUDGE_SIMULATOR_RECEIPT_DELAY_MS": "100",
            "NUDGE_ROUTES": routes_json(f"http://127.0.0.1:{ports.simulator}"),
            "NUDGE_ACCOUNT_PAUSE": "PT120S",  # the breaker stays open through the test
        },
        ui=False,
    )
    try:
        stack.start()
        names = ["worker", stack.add_worker(), stack.add_worker()]
        deadline = time.monotonic() + 180
        logs = [stack.state_dir / "logs" / f"{name}.log" for name in names]
        while not all(log.exists() and '"worker_started"' in log.read_text(errors="replace") for log in logs):
            assert time.monotonic() < deadline, "the added workers never started"
            time.sleep(0.5)
        yield stack
    finally:
        stack.stop()


def sends_by_worker(stack: Stack, route: str) -> Counter[str]:
    """``message_sent`` on ``route`` in each worker's log."""
    counts: Counter[str] = Counter()
    for log in (stack.state_dir / "logs").glob("worker*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"message_sent"' in line:
                record = json.loads(line)
                if record.get("event") == "message_sent" and record.get("route") == route:
                    counts[log.stem] += 1
    return counts


async def ledger_for(sim: httpx.AsyncClient, phones: set[str]) -> list[dict[str, str]]:
    return [entry for entry in (await sim.get("/_sim/ledger")).json() if entry["to"] in phones]


async def pay_all(stack: Stack, phones: list[str], tag: str) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=60) as gw:
        await asyncio.gather(
            *(
                _customer_event(gw, f"{tag}-{i}", phone, "order_paid", order_id=f"o{i}", amount="9.90")
                for i, phone in enumerate(phones)
            )
        )


async def wait_for_ledger(sim: httpx.AsyncClient, phones: set[str], timeout: float) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = await ledger_for(sim, phones)
        if len(entries) >= len(phones):
            return entries
        await asyncio.sleep(0.5)
    raise AssertionError(
        f"only {len(await ledger_for(sim, phones))} of {len(phones)} messages reached the carrier"
    )


async def test_three_workers_together_send_within_the_routes_tps(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    phones = [f"+86137{uuid.uuid4().int % 10**8:08d}" for _ in range(PAYMENTS)]
    before = sends_by_worker(stack, "aliyun-cn")
    async with httpx.AsyncClient(base_url=stack.simulator_url, timeout=30) as sim:
        await pay_all(stack, phones, tag)
        entries = await wait_for_ledger(sim, set(phones), timeout=60 + 3 * PAYMENTS / TPS)
    assert {e["provider"] for e in entries} == {"aliyun"}
    assert len(entries) == PAYMENTS  # one each, none twice
    times = sorted(datetime.fromisoformat(e["received_at"]).timestamp() for e in entries)
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate <= TPS * 1.15, f"{rate:.1f}/s on a route of {TPS}/s"
    busiest = max(sum(1 for t in times if start <= t < start + 2) for start in times)
    assert busiest <= 2 * TPS + 2, busiest
    # All three took part: the limit held across processes, not because one did the work.
    sent = sends_by_worker(stack, "aliyun-cn") - before
    assert len(sent) == 3 and min(sent.values()) >= 1, sent


async def test_a_breaker_one_worker_opens_keeps_every_worker_off_the_route(stack: Stack) -> None:
    """One number's send answers Aliyun's out-of-balance error: the worker that sent it opens the
    breaker; from then on no worker sends on Aliyun, and the messages go out through Tencent."""
    tag = uuid.uuid4().hex[:6]
    poisoned = f"+86136{uuid.uuid4().int % 10**8:08d}"
    phones = [f"+86135{uuid.uuid4().int % 10**8:08d}" for _ in range(24)]
    async with httpx.AsyncClient(base_url=stack.simulator_url, timeout=30) as sim:
        fault = {
            "provider": "aliyun",
            "account": PRIMARY_KEY,
            "code": "isv.AMOUNT_NOT_ENOUGH",
            "numbers": [poisoned],
        }
        assert (await sim.post("/_sim/config", json={"faults": [fault]})).status_code == 200
        try:
            await pay_all(stack, [poisoned], f"{tag}-p")
            [first] = await wait_for_ledger(sim, {poisoned}, timeout=60)
            assert first["provider"] == "tencent"  # it failed over: the breaker is open there
            await asyncio.sleep(1.5)  # the others read the breakers every 0.5 s
            before = sends_by_worker(stack, "tencent-cn")
            await pay_all(stack, phones, tag)
            entries = await wait_for_ledger(sim, set(phones), timeout=90)
        finally:
            await sim.post("/_sim/config", json={"faults": []})
    assert Counter(e["provider"] for e in entries) == {"tencent": len(phones)}
    sent = sends_by_worker(stack, "tencent-cn") - before
    assert len(sent) >= 2, sent  # more than the worker that saw the error


def test_logs_are_where_the_counts_come_from(stack: Stack) -> None:
    """The per-worker counts read three log files: the stack's worker and the two added."""
    assert sorted(p.name for p in Path(stack.state_dir / "logs").glob("worker*.log")) == [
        "worker-2.log",
        "worker-3.log",
        "worker.log",
    ]
