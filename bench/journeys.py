"""Benchmark: journeys completed per second and event -> provider latency on the local stack.

    .venv/bin/python -m bench.journeys --events 500 --concurrency 20

Starts a throwaway stack (dev server with a WAL state file, worker, gateway, simulator), posts
``order_paid`` events (the PaymentSuccess journey sends at once; by default it does not wait for
the receipt, so it does the same work as ``bench.raw``'s journey), and reads the carrier's ledger.
Prints a table and writes JSON under ``bench/results/``. A script, never a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from starter.demo import PLAYGROUND_ENV
from starter.stack import Ports, Stack


def report(figures: dict[str, float], *, title: str, name: str, console: Console) -> None:
    """Print the figures as a table and write them as JSON under ``bench/results/``."""
    table = Table("figure", "value", title=title)
    for key, value in figures.items():
        table.add_row(key, f"{value:,.1f}" if isinstance(value, float) else str(value))
    console.print(table)
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(figures, indent=2))
    console.print(f"written to {path}")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(events: int, concurrency: int, rate: float, stack: Stack, console: Console) -> dict[str, float]:
    tag = uuid.uuid4().hex[:6]
    phones = {f"b{tag}-{i}": f"+86138{i:08d}" for i in range(events)}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=60) as gw:
        consent = {"source": "bench", "text": "Offers by SMS. Reply STOP to opt out."}
        customers = [{"id": cid, "phone": phone, "consent": consent} for cid, phone in phones.items()]
        for start in range(0, len(customers), 1000):
            (
                await gw.post("/v1/customers:batch", json={"customers": customers[start : start + 1000]})
            ).raise_for_status()
        posted_at: dict[str, float] = {}
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        for item in enumerate(phones):
            queue.put_nowait(item)

        async def poster() -> None:
            while not queue.empty():
                index, cid = queue.get_nowait()
                if rate:
                    await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
                body = {
                    "event_id": uuid.uuid4().hex,
                    "customer_id": cid,
                    "name": "order_paid",
                    "properties": {"order_id": f"o-{cid}", "amount": "1.00"},
                }
                posted_at[phones[cid]] = time.time()
                (await gw.post("/v1/events", json=body)).raise_for_status()

        started = time.monotonic()
        await asyncio.gather(*(poster() for _ in range(concurrency)))
        post_seconds = time.monotonic() - started
    async with httpx.AsyncClient(base_url=stack.simulator_url, timeout=60) as sim:
        while True:
            ledger = (await sim.get("/_sim/ledger")).json()
            if len(ledger) >= events or time.monotonic() - started > 600:
                break
            await asyncio.sleep(0.5)
    elapsed = max(datetime.fromisoformat(m["received_at"]).timestamp() for m in ledger) - min(
        posted_at.values()
    )
    latencies = [
        (datetime.fromisoformat(m["received_at"]).timestamp() - posted_at[m["to"]]) * 1000
        for m in ledger
        if m["to"] in posted_at
    ]
    return {
        "events": events,
        "concurrency": concurrency,
        "target_rate_per_s": rate,
        "delivered_to_carrier": len(ledger),
        "events_posted_per_s": events / post_seconds,
        "journeys_per_s": len(ledger) / elapsed,
        "latency_p50_ms": statistics.median(latencies),
        "latency_p99_ms": _percentile(latencies, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300, help="order_paid events to post")
    parser.add_argument("--concurrency", type=int, default=20, help="concurrent posters")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="events per second (0: as fast as possible, a backlog)"
    )
    parser.add_argument(
        "--await-receipt",
        action="store_true",
        help="let PaymentSuccess wait for its delivery receipt (off: the same work as bench.raw's journey)",
    )
    args = parser.parse_args()
    console = Console()
    state_dir = Path(tempfile.mkdtemp(prefix="nudge-bench-"))
    stack = Stack(
        state_dir=state_dir,
        ports=Ports.free(),
        ui=False,
        env_overrides={
            "NUDGE_LOG_LEVEL": "WARNING",
            "NUDGE_JOURNEY_OVERRIDES": json.dumps({"payment_success": {"await_receipt": args.await_receipt}}),
            "NUDGE_QUIET_HOURS": PLAYGROUND_ENV["NUDGE_QUIET_HOURS"],
        },
    )
    try:
        with console.status("starting a throwaway stack..."):
            stack.start()
        with console.status(f"posting {args.events} events..."):
            figures = asyncio.run(run(args.events, args.concurrency, args.rate, stack, console))
    finally:
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    report(figures, title="Nudge journeys on the dev server", name="journeys", console=console)


if __name__ == "__main__":
    main()
