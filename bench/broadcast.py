"""Benchmark: a broadcast's recipients per second, against the ceilings of the same work done raw.

    .venv/bin/python -m bench.broadcast                  # 100,000 recipients
    .venv/bin/python -m bench.broadcast --recipients 1000000
    .venv/bin/python -m bench.broadcast --database postgresql+psycopg://test:test@127.0.0.1:5432/nudge_bench_broadcast

Starts a throwaway stack (dev server, worker, gateway, simulator with a fixed latency per request,
20 ms by default, and its receipts posted back to the gateway in arrays of up to 100, as Aliyun's
HTTP batch push sends them), stores the recipients (mainland
numbers, consented, so Aliyun's SendBatchSms carries them 100 a call), and measures in one run:

- **nudge**: a ``Broadcast`` from its start until the carrier has accepted the last recipient,
  every recipient through the gate and recorded, receipts flowing back meanwhile;
- **durable ceiling**: a raw asyncio loop on the same simulator with the same batch size, batches
  in flight and signed SendBatchSms requests (httpx on the httpx-aiohttp transport), writing one
  row per recipient to the same database in bulk; no gate, no Temporal;
- **transport ceiling**: the same loop recording nothing;
- **floor**: the seed article's loop, one awaited SendSms after another, on a 1,000 sample.

Also the worker's peak RSS and the Temporal history events per 1,000 recipients. Prints a table and
writes JSON under ``bench/results/``. A script, never a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport
from rich.console import Console
from sqlalchemy import Column, MetaData, String, Table, insert, select
from sqlalchemy import func as sql_func
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.providers.aliyun import AliyunProvider
from activities.providers.base import OutboundSms
from bench.journeys import report
from bench.pyspy import Recorder, print_costs, top_costs
from nudge.broadcasts import BroadcastSpec, broadcast_workflow_id
from nudge.routes import DEV_ALIYUN_KEYS
from nudge.store import Consent, ConsentEvent, Customer, Message, create_engine, init_db
from nudge.store.audiences import Audience, AudienceMember
from nudge.temporal import connect, exit_without_teardown
from starter.demo import PLAYGROUND_ENV
from starter.stack import Ports, Stack

RESULTS = Path("bench/results")
PROFILED = ("worker", "gateway", "simulator")  # the parts ``--profile`` samples
BATCH = 100
WINDOW = 8
RECEIPT_BATCH = 100
TEMPLATE = "welcome_back"
PARAMS = {"name": "friend", "start_url": "https://shop.example/new"}
RAW = Table("bench_raw_send", MetaData(), Column("id", String, primary_key=True), Column("to", String))


def numbers(n: int) -> list[str]:
    return [f"+86139{i:08d}" for i in range(n)]


async def seed(engine: AsyncEngine, n: int) -> None:
    """``n`` consenting customers ``r0000000``... and the list audience ``everyone`` of them all."""
    now = datetime.now(UTC)
    await init_db(engine)
    chunk = 20_000
    async with engine.begin() as conn:
        await conn.execute(
            insert(Audience.__table__),
            [  # type: ignore[attr-defined]
                {
                    "name": "everyone",
                    "kind": "list",
                    "definition": None,
                    "description": "bench",
                    "created_by": "bench",
                    "updated_by": "bench",
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
    for start in range(0, n, chunk):
        ids = [f"r{i:07d}" for i in range(start, min(n, start + chunk))]
        async with engine.begin() as conn:
            await conn.execute(
                insert(Customer.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "id": cid,
                        "name": None,
                        "phone": to,
                        "lifecycle_stage": "active",
                        "country": "CN",
                        "timezone": "Asia/Shanghai",
                        "attributes": {},
                        "created_at": now,
                    }
                    for cid, to in zip(ids, numbers(n)[start : start + chunk], strict=True)
                ],
            )
            consent = {"channel": "sms", "purpose": "marketing", "source": "bench", "text": "Offers by SMS."}
            await conn.execute(
                insert(Consent.__table__),  # type: ignore[attr-defined]
                [
                    consent | {"customer_id": cid, "granted": True, "at": now, "updated_at": now}
                    for cid in ids
                ],
            )
            await conn.execute(
                insert(ConsentEvent.__table__),  # type: ignore[attr-defined]
                [
                    consent | {"customer_id": cid, "action": "granted", "at": now, "recorded_at": now}
                    for cid in ids
                ],
            )
            await conn.execute(
                insert(AudienceMember.__table__),  # type: ignore[attr-defined]
                [{"audience": "everyone", "customer_id": cid} for cid in ids],
            )


def database_url(stack: Stack) -> str:
    """The stack's database: its ``NUDGE_DATABASE_URL``, else the SQLite file in its state dir."""
    url = stack.env_overrides.get("NUDGE_DATABASE_URL")
    return stack.client_settings.model_copy(update={"database_url": url or ""}).sqlalchemy_url


def cpu_seconds(pid: int, *, running_children: bool = True) -> float:
    """User and system CPU time of ``pid`` (threads included), so far: with ``running_children``
    that of its running children too, else that of the children it has waited for."""
    pids = [pid]
    if running_children:
        with contextlib.suppress(OSError):
            pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    ticks = 0
    for one in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{one}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            if not running_children:
                ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: the waited-for children
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuAccount:
    """The CPU seconds each part of the stack, and this script, spent within the block: what
    shared the machine's cores with the worker. A part's processes are its own and its main
    thread's children (the dev server's, a worker's spawned helpers). This script's are its own and
    the children it has waited for (py-spy's recorders, stopped before the block ends), not the
    running ones: those are the stack's parts, counted each on its own."""

    def __init__(self, stack: Stack) -> None:
        self._parts = {name: proc.pid for name, proc in stack.children}
        self._start: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self._parts.items()} | {
            "bench": cpu_seconds(os.getpid(), running_children=False)
        }

    def __enter__(self) -> CpuAccount:
        self._start = self._now()
        return self

    def __exit__(self, *_: object) -> None:
        self.spent = {name: spent - self._start[name] for name, spent in self._now().items()}


class RssSampler:
    """The worker's resident memory (its process tree), sampled until stopped: the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def _rss(self) -> int:
        pids = [self.pid]
        with contextlib.suppress(OSError):
            pids += [int(p) for p in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()]
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self._rss())
            await asyncio.sleep(0.25)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def carrier_stats(http: httpx.AsyncClient, carrier: str) -> dict[str, Any]:
    response = await http.get(f"{carrier}/_sim/stats")
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


async def run_nudge(
    stack: Stack,
    n: int,
    console: Console,
    *,
    latency_ms: float,
    window: int = WINDOW,
    profile: Path | None = None,
) -> dict[str, float]:
    settings = stack.client_settings
    client = await connect(settings)
    engine = create_engine(database_url(stack))
    broadcast_id = f"bench-{uuid.uuid4().hex[:6]}"
    spec = BroadcastSpec(
        broadcast_id=broadcast_id,
        audience="everyone",
        template=TEMPLATE,
        params=PARAMS,
        batch_size=BATCH,
        window=window,
    )
    worker = next(proc for name, proc in stack.children if name == "worker")
    async with httpx.AsyncClient(timeout=60, trust_env=False) as http:
        before = (await carrier_stats(http, stack.simulator_url))["accepted"]
        recorders = contextlib.ExitStack()
        if profile is not None:
            for name, proc in stack.children:
                if name in PROFILED:
                    recorders.enter_context(Recorder(proc.pid, profile / f"{name}.txt"))
        # The CPU account closes after py-spy's recorders: their sampling is the bench's own CPU.
        with CpuAccount(stack) as cpu, RssSampler(worker.pid) as rss, recorders:
            started = time.perf_counter()
            started_at = datetime.now(UTC)
            handle = client.get_workflow_handle(await stack.start_broadcast(spec))
            with console.status("broadcasting...") as status:
                while True:
                    stats = await carrier_stats(http, stack.simulator_url)
                    accepted = stats["accepted"] - before
                    status.update(f"broadcasting: {accepted:,} of {n:,} accepted by the carrier")
                    if accepted >= n:
                        break
                    await asyncio.sleep(0.5)
            last = datetime.fromisoformat(stats["last_at"])
            seconds = (last - started_at).total_seconds() + latency_ms / 1000
            await handle.result()
            finished = time.perf_counter() - started
        async with engine.connect() as conn:
            recorded = (
                await conn.execute(
                    select(sql_func.count())
                    .select_from(Message.__table__)
                    .where(  # type: ignore[attr-defined]
                        Message.__table__.c.broadcast_id == broadcast_id  # type: ignore[attr-defined]
                    )
                )
            ).scalar_one()
            delivered = (
                await conn.execute(
                    select(sql_func.count())
                    .select_from(Message.__table__)
                    .where(  # type: ignore[attr-defined]
                        Message.__table__.c.broadcast_id == broadcast_id,  # type: ignore[attr-defined]
                        Message.__table__.c.status == "delivered",  # type: ignore[attr-defined]
                    )
                )
            ).scalar_one()
        repeated = (await carrier_stats(http, stack.simulator_url))["repeated"]
    events = 0
    batches = BatchTimes()
    async for execution in client.list_workflows(f'WorkflowId = "{broadcast_workflow_id(broadcast_id)}"'):
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        events += len(history.events)
        batches.read(history.events)
    await engine.dispose()
    return {
        "nudge_recipients_per_s": n / seconds,
        "nudge_seconds_to_last_accept": seconds,
        "nudge_seconds_to_workflow_done": finished,
        "recorded_rows": float(recorded),
        "delivered_by_workflow_end": float(delivered),
        "numbers_sent_twice": float(repeated),
        "worker_peak_rss_mb": rss.peak / 2**20,
        **{f"cpu_s_{name}": spent for name, spent in cpu.spent.items()},
        "history_events_per_1000": events / n * 1000,
        **batches.figures(),
    }


class BatchTimes:
    """What the batches' own history says limited the rate: how long a batch waited for a worker
    (scheduled to started), how long it ran (started to completed), and how many ran at once."""

    def __init__(self) -> None:
        self.waited: list[float] = []
        self.ran: list[float] = []
        self.busy = 0.0
        self.span = 0.0

    def read(self, events: Any) -> None:
        scheduled: dict[int, datetime] = {}
        started: dict[int, tuple[datetime, datetime]] = {}
        first = last = None
        for event in events:
            at = event.event_time.ToDatetime(tzinfo=UTC)
            if event.HasField("activity_task_scheduled_event_attributes"):
                attributes = event.activity_task_scheduled_event_attributes
                if attributes.activity_type.name == "send_broadcast_batch":
                    scheduled[event.event_id] = at
            elif event.HasField("activity_task_started_event_attributes"):
                key = event.activity_task_started_event_attributes.scheduled_event_id
                if key in scheduled:
                    started[key] = (scheduled[key], at)
            elif event.HasField("activity_task_completed_event_attributes"):
                key = event.activity_task_completed_event_attributes.scheduled_event_id
                if key in started:
                    queued, began = started[key]
                    self.waited.append((began - queued).total_seconds())
                    self.ran.append((at - began).total_seconds())
                    self.busy += (at - began).total_seconds()
                    first = first or queued
                    last = at
        if first is not None and last is not None:
            self.span += (last - first).total_seconds()

    def figures(self) -> dict[str, float]:
        if not self.ran:
            return {}
        return {
            "batch_run_s_p50": statistics.median(self.ran),
            "batch_run_s_p90": statistics.quantiles(self.ran, n=10)[-1] if len(self.ran) > 1 else self.ran[0],
            "batch_wait_for_worker_s_p50": statistics.median(self.waited),
            "batches_running_at_once": self.busy / self.span if self.span else 0.0,
        }


async def raw_loop(
    carrier: str, n: int, *, engine: AsyncEngine | None, sequential: bool = False, window: int = WINDOW
) -> float:
    """Recipients per second of the same requests sent raw: a window of SendBatchSms calls of
    ``BATCH`` numbers (or, ``sequential``, one awaited SendSms after another), each batch's rows
    written to the database in one statement when an ``engine`` is given."""
    ((key, secret),) = list(DEV_ALIYUN_KEYS.items())[:1]
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=30) as http:
        aliyun = AliyunProvider(
            http, base_url=f"{carrier}/aliyun", access_key_id=key, access_key_secret=secret
        )
        todo = [
            OutboundSms(
                message_id=uuid.uuid4().hex,
                to=to,
                body="",
                signature="Nudge",
                template_code="SMS_480006",
                template_params=PARAMS,
            )
            for to in numbers(n)
        ]
        started = time.perf_counter()
        if sequential:
            for sms in todo:
                await aliyun.send(sms)
            return n / (time.perf_counter() - started)
        queue = [todo[i : i + BATCH] for i in range(0, n, BATCH)]

        async def lane() -> None:
            while queue:
                batch = queue.pop()
                await aliyun.send_batch(batch)
                if engine is not None:
                    async with engine.begin() as conn:
                        await conn.execute(insert(RAW), [{"id": s.message_id, "to": s.to} for s in batch])

        await asyncio.gather(*(lane() for _ in range(window)))
        return n / (time.perf_counter() - started)


async def ceilings(stack: Stack, n: int, floor_sample: int, *, window: int) -> dict[str, float]:
    engine = create_engine(database_url(stack))
    async with engine.begin() as conn:
        await conn.run_sync(RAW.metadata.create_all)
    try:
        return {
            "durable_ceiling_per_s": await raw_loop(stack.simulator_url, n, engine=engine, window=window),
            "transport_ceiling_per_s": await raw_loop(stack.simulator_url, n, engine=None, window=window),
            "floor_per_s": await raw_loop(stack.simulator_url, floor_sample, engine=None, sequential=True),
        }
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="the simulator's fixed time per request"
    )
    parser.add_argument("--floor-sample", type=int, default=1000)
    parser.add_argument("--database", default="", help="NUDGE_DATABASE_URL for the stack (default: SQLite)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy on the worker, gateway and simulator: their top costs",
    )
    parser.add_argument("--top", type=int, default=25, help="functions the profile lists")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (each with its own rate limiters and breakers, as issue 14 has it)",
    )
    parser.add_argument(
        "--window", type=int, default=WINDOW, help="batches in flight, for Nudge and the raw loops alike"
    )
    parser.add_argument("--skip-ceilings", action="store_true", help="measure Nudge only (profiling)")
    args = parser.parse_args()
    console = Console()
    state_dir = Path(tempfile.mkdtemp(prefix="nudge-bench-"))
    env = {
        "NUDGE_LOG_LEVEL": "WARNING",
        "NUDGE_QUIET_HOURS": PLAYGROUND_ENV["NUDGE_QUIET_HOURS"],
        "NUDGE_FREQUENCY_CAPS": "[]",
    }
    if args.database:
        env["NUDGE_DATABASE_URL"] = args.database
    if args.workers > 1:
        env["NUDGE_WORKER_EAGER_ACTIVITIES"] = "false"  # the batches go to every process
    stack = Stack(state_dir=state_dir, ports=Ports.free(), ui=False, env_overrides=env)
    try:
        with console.status("starting a throwaway stack..."):
            stack.start()
            for _ in range(args.workers - 1):
                stack.add_worker()
        config = {
            "latency_ms": args.latency_ms,
            "latency_distribution": "fixed",
            "receipt_delay_ms": 1000,
            # Aliyun's HTTP batch push: receipts come in JSON arrays (up to 100 here).
            "receipt_batch": RECEIPT_BATCH,
        }
        httpx.post(f"{stack.simulator_url}/_sim/config", json=config, timeout=10).raise_for_status()
        with console.status(f"storing {args.recipients:,} customers..."):
            engine = create_engine(database_url(stack))
            asyncio.run(_seed(engine, args.recipients))
        profile = RESULTS / f"broadcast-profile-{time.strftime('%H%M%S')}" if args.profile else None
        figures = asyncio.run(
            run_nudge(
                stack,
                args.recipients,
                console,
                latency_ms=args.latency_ms,
                window=args.window,
                profile=profile,
            )
        )
        if profile is not None:
            for name in PROFILED:
                print_costs(top_costs(profile / f"{name}.txt", args.top), title=name, console=console)
        if args.skip_ceilings:
            console.print(figures)
            return
        with console.status("the raw loops on the same simulator..."):
            figures |= asyncio.run(ceilings(stack, args.recipients, args.floor_sample, window=args.window))
    finally:
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    figures["recipients"] = float(args.recipients)
    figures["worker_processes"] = float(args.workers)
    figures["window"] = float(args.window)
    figures["of_durable_ceiling"] = figures["nudge_recipients_per_s"] / figures["durable_ceiling_per_s"]
    figures["times_the_floor"] = figures["nudge_recipients_per_s"] / figures["floor_per_s"]
    report(figures, title=f"A broadcast to {args.recipients:,} recipients", name="broadcast", console=console)


async def _seed(engine: AsyncEngine, n: int) -> None:
    try:
        await seed(engine, n)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main()
    exit_without_teardown(0)  # it connected: the interpreter's teardown can abort (nudge.temporal)
