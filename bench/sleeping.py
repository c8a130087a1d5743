"""Benchmark: many journeys asleep at once on one dev server, and the worker's memory meanwhile.

    .venv/bin/python -m bench.sleeping --journeys 100000     # the issue's figure (about an hour here)
    .venv/bin/python -m bench.sleeping --journeys 5000       # a quick look

Starts a throwaway stack, posts ``cart_abandoned`` for each customer (CartAbandonment then sleeps
``--sleep`` seconds before its reminder), and once all have started it samples the worker's RSS
while they sleep, and measures the dev server's state file. When the timers fire, each journey
wakes, sends its reminder through the gate to the simulator, finds no click within a second and
ends; the script waits until the carrier has every reminder and reports how long after the last
timer that took. Prints a table and writes JSON under ``bench/results/``. A script, never a timed
test: the target is at most 300 MB of worker RSS with 100,000 asleep.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bench.broadcast import RssSampler
from bench.journeys import report
from starter.demo import PLAYGROUND_ENV
from starter.stack import Ports, Stack


async def run(
    journeys: int, sleep_s: float, concurrency: int, stack: Stack, console: Console
) -> dict[str, float]:
    tag = uuid.uuid4().hex[:6]
    customers = {f"s{tag}-{i}": f"+86139{i:08d}" for i in range(journeys)}
    worker_pid = dict(stack.children)["worker"].pid
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=120
    ) as gw:
        consent = {"source": "bench", "text": "Offers by SMS. Reply STOP to opt out."}
        rows = [{"id": cid, "phone": phone, "consent": consent} for cid, phone in customers.items()]
        for start in range(0, len(rows), 1000):
            (
                await gw.post("/v1/customers:batch", json={"customers": rows[start : start + 1000]})
            ).raise_for_status()
        queue: asyncio.Queue[str] = asyncio.Queue()
        for cid in customers:
            queue.put_nowait(cid)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as progress, RssSampler(worker_pid) as starting:
            task = progress.add_task("starting journeys", total=journeys)

            async def poster() -> None:
                while not queue.empty():
                    cid = queue.get_nowait()
                    body = {
                        "event_id": uuid.uuid4().hex,
                        "customer_id": cid,
                        "name": "cart_abandoned",
                        "properties": {"cart_id": "k1"},
                    }
                    (await gw.post("/v1/events", json=body)).raise_for_status()
                    progress.advance(task)

            started = time.monotonic()
            await asyncio.gather(*(poster() for _ in range(concurrency)))
            start_seconds = time.monotonic() - started
    first_timer = started + sleep_s
    last_timer = started + start_seconds + sleep_s
    asleep = max(0.0, first_timer - time.monotonic())
    with RssSampler(worker_pid) as sleeping:
        await asyncio.sleep(min(asleep, 30.0))
        state_mb = sum(p.stat().st_size for p in stack.state_dir.glob("temporal.db*")) / 1e6
    if asleep <= 0:
        console.print("[yellow]the first timers fired before every journey had started: raise --sleep[/]")
    async with httpx.AsyncClient(base_url=stack.simulator_url, timeout=120) as sim:
        while True:
            stats = (await sim.get("/_sim/stats")).json()
            if stats["accepted"] >= journeys or time.monotonic() - last_timer > 3600:
                break
            await asyncio.sleep(1.0)
    woken = time.monotonic()
    return {
        "journeys": journeys,
        "start_rate_per_s": journeys / start_seconds,
        "asleep_at_once": journeys if asleep > 0 else 0,
        "worker_rss_peak_starting_mb": starting.peak / 1e6,
        "worker_rss_peak_asleep_mb": sleeping.peak / 1e6,
        "dev_server_state_mb": state_mb,
        "reminders_at_carrier": stats["accepted"],
        "wake_seconds_after_last_timer": woken - last_timer,
        "wake_rate_per_s": stats["accepted"] / max(woken - first_timer, 1e-9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journeys", type=int, default=5000, help="journeys to put to sleep")
    parser.add_argument(
        "--sleep", type=float, default=0.0, help="seconds each sleeps (0: long enough for every start first)"
    )
    parser.add_argument("--concurrency", type=int, default=20, help="concurrent posters")
    args = parser.parse_args()
    sleep_s = args.sleep or args.journeys / 20 + 120
    console = Console()
    state_dir = Path(tempfile.mkdtemp(prefix="nudge-bench-"))
    overrides = {"cart_abandonment": {"first_wait": f"PT{sleep_s:.0f}S", "click_window": "PT1S"}}
    stack = Stack(
        state_dir=state_dir,
        ports=Ports.free(),
        ui=False,
        env_overrides={
            "NUDGE_LOG_LEVEL": "WARNING",
            "NUDGE_JOURNEY_OVERRIDES": json.dumps(overrides),
            "NUDGE_QUIET_HOURS": PLAYGROUND_ENV["NUDGE_QUIET_HOURS"],
        },
    )
    try:
        with console.status("starting a throwaway stack..."):
            stack.start()
        figures = asyncio.run(run(args.journeys, sleep_s, args.concurrency, stack, console))
    finally:
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    report(figures, title=f"{args.journeys:,} sleeping journeys", name="sleeping", console=console)


if __name__ == "__main__":
    main()
