"""Baseline: the minimal raw-Temporal journey that DESIGN.md's reference figures describe.

    .venv/bin/python -m bench.raw --events 500            # journeys/s under a backlog
    .venv/bin/python -m bench.raw --events 300 --rate 10  # event -> provider latency

Signal-with-start of a workflow that runs one activity, which POSTs to the carrier simulator's
native API over loopback; the worker is a process of its own, as Nudge's is. Run it next to
``bench.journeys`` on the same machine and quote the ratio: absolute figures move with the machine.
A script, never a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from httpx_aiohttp import AiohttpTransport
from rich.console import Console
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from bench.journeys import _percentile, report
from starter.stack import Ports, Stack

TASK_QUEUE = "raw-bench"


class Sender:
    """One shared HTTP client on the aiohttp transport, as Nudge's worker has."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @activity.defn(name="post_sms")
    async def post_sms(self, args: list[str]) -> str:
        carrier, to = args
        response = await self._http.post(
            f"{carrier}/v1/messages",
            json={"client_ref": uuid.uuid4().hex, "to": to, "from": "Raw", "body": "hi"},
        )
        response.raise_for_status()
        return str(response.json()["id"])


@workflow.defn(name="RawJourney", sandboxed=False)
class RawJourney:
    def __init__(self) -> None:
        self.event: str | None = None

    @workflow.signal(name="event")
    def on_event(self, to: str) -> None:
        self.event = to

    @workflow.run
    async def run(self, carrier: str) -> str:
        await workflow.wait_condition(lambda: self.event is not None)
        assert self.event is not None
        result: str = await workflow.execute_activity(
            "post_sms",
            [carrier, self.event],
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )
        return result


async def serve_worker(address: str) -> None:
    client = await Client.connect(address)
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=30) as http:
        sender = Sender(http)
        async with Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[RawJourney],
            activities=[sender.post_sms],
            max_concurrent_activities=200,
        ):
            await asyncio.Event().wait()


async def drive(stack: Stack, events: int, concurrency: int, rate: float) -> dict[str, float]:
    client = await Client.connect(stack.temporal_address)
    phones = [f"+86139{i:08d}" for i in range(events)]
    posted_at: dict[str, float] = {}
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in enumerate(phones):
        queue.put_nowait(item)
    started = time.monotonic()

    async def poster() -> None:
        while not queue.empty():
            index, phone = queue.get_nowait()
            if rate:
                await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
            posted_at[phone] = time.time()
            await client.start_workflow(
                RawJourney.run,
                stack.simulator_url,
                id=f"raw-{uuid.uuid4().hex}",
                task_queue=TASK_QUEUE,
                start_signal="event",
                start_signal_args=[phone],
            )

    await asyncio.gather(*(poster() for _ in range(concurrency)))
    async with httpx.AsyncClient(base_url=stack.simulator_url, timeout=60) as sim:
        while True:
            ledger = (await sim.get("/_sim/ledger")).json()
            if len(ledger) >= events or time.monotonic() - started > 600:
                break
            await asyncio.sleep(0.5)
    received = [datetime.fromisoformat(m["received_at"]).timestamp() for m in ledger]
    latencies = [(t - posted_at[m["to"]]) * 1000 for t, m in zip(received, ledger, strict=True)]
    return {
        "events": events,
        "concurrency": concurrency,
        "target_rate_per_s": rate,
        "delivered_to_carrier": len(ledger),
        "journeys_per_s": len(ledger) / (max(received) - min(posted_at.values())),
        "latency_p50_ms": statistics.median(latencies),
        "latency_p99_ms": _percentile(latencies, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300, help="journeys to start")
    parser.add_argument("--concurrency", type=int, default=20, help="concurrent starters")
    parser.add_argument("--rate", type=float, default=0.0, help="starts per second (0: a backlog)")
    parser.add_argument("--worker", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(serve_worker(args.worker))
        return
    console = Console()
    state_dir = Path(tempfile.mkdtemp(prefix="nudge-raw-"))
    stack = Stack(
        state_dir=state_dir, ports=Ports.free(), ui=False, env_overrides={"NUDGE_LOG_LEVEL": "WARNING"}
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        with console.status("starting the dev server and the simulator..."):
            stack.start_parts("temporal", "simulator")
            worker = subprocess.Popen([sys.executable, "-m", "bench.raw", "--worker", stack.temporal_address])
        with console.status(f"starting {args.events} raw journeys..."):
            figures = asyncio.run(drive(stack, args.events, args.concurrency, args.rate))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=10)
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    report(figures, title="Raw Temporal baseline on the dev server", name="raw", console=console)


if __name__ == "__main__":
    main()
