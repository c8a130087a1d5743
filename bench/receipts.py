"""Benchmark: receipts and clicks the gateway stores per second, counted in the database afterwards.

    .venv/bin/python -m bench.receipts                                  # SQLite, every case
    .venv/bin/python -m bench.receipts --database postgresql://postgres@127.0.0.1:5432
    .venv/bin/python -m bench.receipts --against /tmp/nudge-base --rounds 2   # old and new, alternating
    .venv/bin/python -m bench.receipts --cases aliyun-50,twilio --profile     # py-spy's top costs

Starts a Temporal dev server (the gateway connects to it), then for each case a real gateway
process as the stack starts it (``nudge gateway``: uvicorn with uvloop and httptools) on a fresh
database into which the case's messages were bulk-inserted as submitted (delivered, with a link,
for clicks). A load generator in a process of its own posts their receipts in the providers' own
formats (``bench.receipt_load``: Aliyun arrays of 1 and 50, Tencent arrays of 50, Twilio's signed
form posts, the simulator's JSON) or requests their links, at full speed with bounded concurrency.
Afterwards the rows are counted: every receipt stored, every status applied, every click recorded,
and the rate is what was stored over the load's duration. With ``--against DIR`` (another
checkout, e.g. ``git archive HEAD | tar -x -C DIR``) each case runs on both trees in turn, the
order swapped every time, since this machine's speed drifts. Writes JSON under ``bench/results/``.
A script, never a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from sqlalchemy import func, insert, select
from sqlmodel import col

from bench.journeys import report
from bench.pyspy import Recorder, print_costs, top_costs
from bench.receipt_load import CASES, Case, link_rows, message_rows, requests, run_load, undelivered
from nudge.routes import RouteConfig, local_routes
from nudge.store import Click, Link, Message, MessageStatusChange, create_engine, init_db
from starter.stack import Ports, Stack, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path("bench/results")
DATABASE = "nudge_bench_receipts"
TARGET = 2000.0
"""Receipts (or clicks) stored per second, counted afterwards (issue 14)."""


@dataclass(frozen=True)
class Tree:
    label: str
    path: Path


def routes_json() -> str:
    """The local routes plus the simulator's native one (its receipt endpoint is closed without it),
    secrets included: this is what the gateway reads from ``NUDGE_ROUTES``."""
    routes = [*local_routes("http://127.0.0.1:9"), RouteConfig(name="sim", provider="simulator")]
    return json.dumps(
        [route.model_dump(exclude_none=True) for route in routes],
        default=lambda value: value.get_secret_value() if hasattr(value, "get_secret_value") else str(value),
    )


class Database:
    """A fresh database per run: a SQLite file, or a PostgreSQL database named ``nudge_bench...``."""

    def __init__(self, server: str | None, state_dir: Path) -> None:
        self.server, self.state_dir = server, state_dir
        self.name = DATABASE
        if server and (match := re.match(r"(postgres(?:ql)?://[^/]+)(?:/(\w*))?$", server)):
            self.server, self.name = match[1], match[2] or DATABASE
            if not self.name.startswith("nudge_bench"):
                raise SystemExit(f"--database must name a nudge_bench... database, not {self.name!r}")
        elif server:
            raise SystemExit("--database takes postgresql://user@host:port[/nudge_bench...]")

    def fresh(self, run: str) -> str:
        """A new empty database; returns its SQLAlchemy URL (also good for ``NUDGE_DATABASE_URL``)."""
        if self.server is None:
            return f"sqlite+aiosqlite:///{self.state_dir / f'{run}.db'}"
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.name}"')
        return f"{self.server.replace('postgresql://', 'postgresql+psycopg://', 1)}/{self.name}"

    def drop(self) -> None:
        if self.server is not None:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            conn.execute(sql)


async def seed(url: str, case: Case, tag: str, count: int) -> None:
    """Make the schema and bulk-insert the case's messages (and links)."""
    engine = create_engine(url)
    try:
        await init_db(engine)
        async with engine.begin() as conn:
            for table, rows in (
                (Message, list(message_rows(case, tag, count))),
                (Link, list(link_rows(case, tag, count))),
            ):
                for start in range(0, len(rows), 2000):
                    await conn.execute(insert(table), rows[start : start + 2000])
    finally:
        await engine.dispose()


async def count_rows(url: str, case: Case, count: int) -> dict[str, Any]:
    """What the database holds afterwards, and whether it is everything that was sent."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            statuses = dict(
                (await conn.execute(select(Message.status, func.count()).group_by(Message.status))).all()
            )  # type: ignore[arg-type]
            if case.clicks:
                clicks = (await conn.execute(select(func.count()).select_from(Click))).scalar_one()
                people = (
                    await conn.execute(
                        select(func.count()).select_from(Click).where(col(Click.bot).is_(None))
                    )
                ).scalar_one()
                clicked = (
                    await conn.execute(select(func.count()).select_from(Message).where(col(Message.clicked)))
                ).scalar_one()
                return {"stored": clicks, "complete": clicks == people == clicked == count}
            changes = (await conn.execute(select(func.count()).select_from(MessageStatusChange))).scalar_one()
            unmatched = (
                await conn.execute(
                    select(func.count())
                    .select_from(MessageStatusChange)
                    .where(col(MessageStatusChange.message_id).is_(None))
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    failed = sum(1 for index in range(count) if undelivered(index))
    expected = {"delivered": count - failed, "undelivered": failed}
    complete = changes == count * case.receipts_per_message() and unmatched == 0 and statuses == expected
    return {"stored": changes, "unmatched": unmatched, "statuses": statuses, "complete": complete}


def items_per_transaction(log_path: Path, start: int) -> float | None:
    """The mean batch the gateway stored in one transaction, from its ``receipts_stored`` and
    ``clicks_stored`` lines (None for a gateway that logs a line per item instead)."""
    sizes = []
    with log_path.open("rb") as log:
        log.seek(start)
        for line in log:
            if b'"receipts_stored"' in line or b'"clicks_stored"' in line:
                entry = json.loads(line)
                sizes.append(entry.get("receipts") or entry.get("requests") or 0)
    return sum(sizes) / len(sizes) if sizes else None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(
    case: Case, tree: Tree, *, tag: str, args: argparse.Namespace, database: Database, state_dir: Path,
    temporal_port: int,
) -> dict[str, Any]:  # fmt: skip
    """One case on one tree: a fresh database, seeded; a gateway on it; the load; the counts."""
    url = database.fresh(f"{tree.label}-{case.name}-{tag}")
    asyncio.run(seed(url, case, tag, args.messages))
    ports = Ports(
        temporal=temporal_port,
        ui=free_port(),
        gateway=free_port(),
        simulator=free_port(),
        metrics=free_port(),
    )
    env = {"NUDGE_DATABASE_URL": url, "NUDGE_ROUTES": routes_json(), "PYTHONPATH": str(tree.path)}
    gateway = Stack(state_dir=state_dir, ports=ports, ui=False, env_overrides=env)
    log_path = state_dir / "logs" / "gateway.log"
    log_start = log_path.stat().st_size if log_path.exists() else 0
    # The tree's own code: ``python -m`` puts the working directory first on the path, before
    # PYTHONPATH, so the gateway starts from inside the tree.
    with contextlib.chdir(tree.path):
        gateway.start_parts("gateway")
    profile_path = RESULTS / f"receipts-profile-{tree.label}-{case.name}-{time.strftime('%H%M%S')}.txt"
    try:
        plan = requests(case, tag, args.messages, gateway.gateway_url)
        [(_, process)] = gateway.children
        with Recorder(process.pid, profile_path) if args.profile else contextlib.nullcontext():
            cpu_before = cpu_seconds(process.pid)
            results: Any = multiprocessing.get_context("spawn").Queue()
            loader = multiprocessing.get_context("spawn").Process(
                target=run_load, args=(plan, args.concurrency, results)
            )
            loader.start()
            load = results.get(timeout=3600)
            loader.join()
            gateway_cpu = cpu_seconds(process.pid) - cpu_before
    finally:
        gateway.stop()
    counted = asyncio.run(count_rows(url, case, args.messages))
    counted["items_per_transaction"] = items_per_transaction(log_path, log_start)
    stored = counted["stored"]
    figures = {
        "case": case.name,
        "tree": tree.label,
        "stored_per_s": stored / load["elapsed_s"],
        "gateway_cpu_ms_per_item": 1000 * gateway_cpu / max(stored, 1),
        "gateway_cores": gateway_cpu / load["elapsed_s"],
        "requests_per_s": load["requests"] / load["elapsed_s"],
        **counted,
        **load,
    }
    if args.profile:
        figures["profile"] = top_costs(profile_path, args.top)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000, help="messages per case")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument(
        "--database", help="postgresql://user@host:port[/nudge_bench...]; SQLite if not given"
    )
    parser.add_argument("--against", type=Path, help="another checkout to run side by side (the baseline)")
    parser.add_argument("--rounds", type=int, default=1, help="times each case runs (on each tree)")
    parser.add_argument("--profile", action="store_true", help="py-spy on the gateway: its top costs")
    parser.add_argument("--top", type=int, default=15, help="functions the profile lists")
    args = parser.parse_args()
    console = Console()
    unknown = set(args.cases.split(",")) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown cases {sorted(unknown)}; choose from {', '.join(CASES)}")
    cases = [CASES[name] for name in args.cases.split(",")]
    trees = [Tree("new", ROOT)] + ([Tree("old", args.against.resolve())] if args.against else [])
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nudge-bench-receipts-") as tmp:
        state_dir = Path(tmp)
        database = Database(args.database, state_dir)
        temporal = Stack(state_dir=state_dir, ports=Ports.free(), ui=False)
        temporal.start_parts("temporal")
        try:
            turn = 0
            for round_ in range(args.rounds):
                for case in cases:
                    for tree in trees if turn % 2 == 0 else trees[::-1]:
                        tag = f"{round_}{turn % 10}{len(runs) % 10}"
                        with console.status(f"{case.name} on {tree.label} ({args.messages:,} messages)..."):
                            figures = run_case(
                                case, tree, tag=tag, args=args, database=database, state_dir=state_dir,
                                temporal_port=temporal.ports.temporal,
                            )  # fmt: skip
                        runs.append(figures)
                        console.print(line(figures), soft_wrap=True)
                        if "profile" in figures:
                            print_costs(
                                figures["profile"], title=f"{tree.label} {case.name}", console=console
                            )
                    turn += 1
        finally:
            temporal.stop()
            database.drop()
    summary(runs, args, console)


def line(run: dict[str, Any]) -> str:
    batch = run["items_per_transaction"]
    return (
        f"{run['case']:>15} {run['tree']}: {run['stored_per_s']:7,.0f}/s stored, "
        f"{run['gateway_cpu_ms_per_item']:.2f} gateway CPU ms each ({run['gateway_cores']:.2f} cores), "
        f"{f'{batch:.1f}' if batch else '-'} per transaction, p50 {run['p50_ms']:.0f} ms, "
        f"complete={run['complete']}, answers={run['statuses']}"
    )


def summary(runs: list[dict[str, Any]], args: argparse.Namespace, console: Console) -> None:
    """Every run again, then the mean rate per case and tree, the new/old ratio, and the JSON."""
    console.print(f"\n{'PostgreSQL' if args.database else 'SQLite'}, {args.messages:,} messages per case:")
    for run in runs:
        console.print(line(run), soft_wrap=True)
    figures: dict[str, float] = {}
    for name in dict.fromkeys(run["case"] for run in runs):
        for label in ("new", "old"):
            mine = [r for r in runs if r["case"] == name and r["tree"] == label]
            if mine:
                figures[f"{name}/{label}_per_s"] = sum(r["stored_per_s"] for r in mine) / len(mine)
                figures[f"{name}/{label}_cpu_ms"] = sum(r["gateway_cpu_ms_per_item"] for r in mine) / len(
                    mine
                )
        if f"{name}/old_per_s" in figures:
            figures[f"{name}/ratio"] = figures[f"{name}/new_per_s"] / figures[f"{name}/old_per_s"]
    title = f"mean of {args.rounds} round(s); target {TARGET:,.0f}/s, every item stored"
    report(figures, title=title, name="receipts", console=console)
    (RESULTS / f"receipts-runs-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
