"""Benchmark: the funnel report (``Reports.funnel``) over a million messages on PostgreSQL.

    .venv/bin/python -m bench.funnel                      # 1,000,000 messages, then the queries
    .venv/bin/python -m bench.funnel --messages 200000 --keep
    .venv/bin/python -m bench.funnel --reuse              # the kept database, no new load

Creates a database of its own (``nudge_bench_funnel``, never the tests' ``test``), makes the
schema with ``init_db``, loads messages spread over journeys, steps, templates, variants, routes,
signatures, categories and statuses in realistic proportions (with clicks, complaints,
conversions and journey entries) through COPY, ANALYZEs, then times the funnel warm for several
groupings and a filter, prints EXPLAIN (ANALYZE, BUFFERS) of the slowest, writes JSON under
``bench/results/`` and drops the database if it created it (unless ``--keep``; one reused stays).
``--database`` must be named ``nudge_bench...``. A script, never a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex

from nudge.store import Complaint, Conversion, JourneyEntry, Message, create_engine, init_db, session_factory
from starter.api.services.reports import Dimension, FunnelFilter, Reports

SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "nudge_bench_funnel"
TARGET_MS = 1000.0
"""A funnel over a million messages answers in under a second on PostgreSQL."""


# -- what the data looks like ----------------------------------------------------------------------


@dataclass(frozen=True)
class Journey:
    name: str
    weight: float
    steps: list[tuple[str, str]]  # (step, template), in the order a journey sends them
    go_on: float  # the share of journeys that reach each next step
    experiment: tuple[str, list[str]] | None = None
    category: str = "marketing"
    goal: bool = True  # a goal event (order_paid) that credits conversions


JOURNEYS = [
    Journey(
        "cart_abandonment",
        0.34,
        [("send:cart_reminder", "cart_reminder"), ("send:cart_last_call", "cart_last_call")],
        0.55,
        ("cart_copy", ["a", "b"]),
    ),
    Journey(
        "onboarding",
        0.22,
        [("send:welcome", "welcome"), ("send:tips", "onboarding_tips"), ("send:first_order", "first_order")],
        0.7,
        ("welcome_copy", ["a", "b", "c"]),
    ),
    Journey(
        "winback",
        0.12,
        [("send:miss_you", "winback_miss_you"), ("send:offer", "winback_offer")],
        0.5,
        ("winback_offer", ["control", "ten_off"]),
    ),
    Journey(
        "payment_success",
        0.22,
        [("send:payment_success", "payment_success")],
        0.0,
        category="transactional",
        goal=False,
    ),
    Journey("birthday", 0.04, [("send:birthday", "birthday_coupon")], 0.0),
    Journey(
        "reorder",
        0.06,
        [("send:reorder_7d", "reorder_reminder"), ("send:reorder_14d", "reorder_reminder")],
        0.4,
        ("reorder_timing", ["d7", "d14"]),
    ),
]


@dataclass(frozen=True)
class Route:
    name: str
    provider: str
    weight: float
    signatures: list[str]
    price: float
    currency: str
    country: str
    codes: list[str] = field(default_factory=list)  # undelivered error codes


ROUTES = [
    Route("aliyun-cn", "aliyun", 0.5, ["Shop", "ShopEN"], 0.045, "CNY", "+86138", ["MK:0001", "MK:0012"]),
    Route("tencent-cn", "tencent", 0.3, ["Shop"], 0.05, "CNY", "+86139", ["1014", "1016"]),
    Route("twilio-us", "twilio", 0.2, ["+15551234567"], 0.0079, "USD", "+1415", ["30003", "30005", "30007"]),
]

# Of every message the gate decided on: the share of each status.
STATUSES = {
    "delivered": 0.835,
    "undelivered": 0.035,
    "sent": 0.012,
    "submitted": 0.008,
    "blocked": 0.09,
    "failed": 0.01,
    "pending": 0.01,
}
BLOCKED_REASONS = {
    "capped:marketing_daily": 0.22,
    "suppressed": 0.2,
    "no_consent": 0.18,
    "consent_withdrawn": 0.1,
    "unreachable:invalid_number": 0.12,
    "unreachable:carrier_blocked": 0.05,
    "paused:template=winback_offer": 0.05,
    "template_not_approved:birthday_coupon": 0.03,
    "no_phone": 0.05,
}
CLICK_RATE = 0.09  # of delivered marketing messages (a link in most)
OPT_OUT_RATE = 0.006  # of sent marketing messages
PROVIDER_CODE_RATE = 0.0015
CONVERSION_RATE = 0.04  # of delivered messages of a journey with a goal
SECOND_CONVERSION = 0.1  # of converted messages: a second order in the window
DAYS = 90
NAMES = ["Ada", "Li Wei", "Grace", "Mei", "Alan", "Zhang San", "Linus", "Fang"]


def _picker(weights: dict[str, float] | Sequence[Any], rng: random.Random) -> Iterator[Any]:
    """An endless stream of weighted picks, drawn in batches (``random.choices`` is fast in bulk)."""
    if isinstance(weights, dict):
        items, w = list(weights), list(weights.values())
    else:
        items, w = list(weights), [item.weight for item in weights]
    while True:
        yield from rng.choices(items, weights=w, k=65536)


@dataclass
class Data:
    """What one load wrote, for the COPY of each table and the figures."""

    messages: int = 0
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    complaints: list[tuple[Any, ...]] = field(default_factory=list)
    conversions: list[tuple[Any, ...]] = field(default_factory=list)


MESSAGE_COLUMNS = (
    "id", "idempotency_key", "workflow_id", "journey", "step", "customer_id", "template", "variant",
    "category", "to", "body", "segments", "provider", "provider_message_id", "status", "error_code",
    "reason", "notify_receipt", "clicked", "params", "route", "signature", "cost", "currency",
    "defer_until", "cap_reserved_at", "waiting", "status_checked_at", "delivered_at", "created_at",
    "updated_at",
)  # fmt: skip


def messages(total: int, data: Data, seed: int) -> Iterator[tuple[Any, ...]]:
    """``total`` message rows in the order the gate writes them (by creation time); fills ``data``
    with the journey entries, complaints and conversions that go with them."""
    rng = random.Random(seed)
    journeys, routes = _picker(JOURNEYS, rng), _picker(ROUTES, rng)
    statuses, reasons = _picker(STATUSES, rng), _picker(BLOCKED_REASONS, rng)
    rand, bits = rng.random, rng.getrandbits
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=DAYS)
    customers = max(1000, total // 5)
    # First the journey instances (and their entries), then their sends, oldest first: a table
    # filled by live traffic is in creation order on disk, which a time range's scan relies on.
    instances: list[tuple[Journey, str, str, str | None, str, str]] = []
    sends: list[tuple[float, int, int]] = []  # (created, instance, step index)
    while len(sends) < total:
        journey = next(journeys)
        customer = f"c{rng.randrange(customers):07d}"
        workflow_id = f"journey:{journey.name}:{customer}:{len(instances)}"
        # Each next step a day later, and the last one sent by now.
        entered = start.timestamp() + rand() * (DAYS - len(journey.steps)) * 86400
        # Some journeys end before their first send (the customer bought, the cart emptied).
        count = 0 if rand() < 0.08 else 1
        while count and count < len(journey.steps) and rand() < journey.go_on:
            count += 1
        entries = 1 if rand() < 0.95 else rng.choice((2, 3))
        data.entries.append(
            (
                workflow_id,
                journey.name,
                customer,
                None,
                None,
                datetime.fromtimestamp(entered, UTC),
                entries,
                True,
            )
        )
        variant = None
        if journey.experiment is not None:
            experiment, variants = journey.experiment
            variant = f"{experiment}:{rng.choice(variants)}"
        for index in range(count):
            sends.append((entered + 86400 * index + rand() * 60, len(instances), index))
        instances.append(
            (journey, customer, workflow_id, variant, f"{rng.randrange(10**8):08d}", rng.choice(NAMES))
        )
    data.entries.sort(key=lambda entry: entry[5])
    del sends[total:]
    sends.sort()
    for timestamp, instance, index in sends:
        journey, customer, workflow_id, variant, phone, name = instances[instance]
        created = datetime.fromtimestamp(timestamp, UTC)
        data.messages += 1
        step, template = journey.steps[index]
        route = next(routes)
        status = next(statuses)
        message_id = f"{bits(128):032x}"
        code = f"{bits(36):09x}"
        body = (
            f"【{route.signatures[0]}】{name}, {template.replace('_', ' ')}: https://s.nudge.example/{code}"
        )
        segments = 1 if rand() < 0.8 else (2 if rand() < 0.9 else 3)
        reason = error_code = provider_message_id = sent_route = signature = cost = currency = None
        defer_until = delivered_at = None
        clicked = False
        if status == "blocked":
            reason = next(reasons)
            segments = 0
        elif status == "pending":
            segments = 0
            if rand() < 0.6:
                reason = "deferred:quiet_hours"
                defer_until = created + timedelta(hours=8)
        else:
            sent_route, signature = route.name, route.signatures[bits(8) % len(route.signatures)]
            if status == "failed":
                reason, segments = f"no_route: {route.name} refused", 0
            else:
                provider_message_id = f"{route.provider[:3].upper()}{bits(80):020x}"
                cost, currency = round(segments * route.price, 4), route.currency
                if status == "undelivered":
                    error_code = route.codes[bits(8) % len(route.codes)]
                elif status == "delivered":
                    delivered_at = created + timedelta(seconds=2 + rand() * 20)
                    clicked = journey.category == "marketing" and rand() < CLICK_RATE
        updated = delivered_at or created + timedelta(seconds=1)
        params = f'{{"name": "{name}", "link": "https://s.nudge.example/{code}"}}'
        yield (
            message_id, f"{workflow_id}/{step}", workflow_id, journey.name, step, customer, template,
            variant, journey.category, route.country + phone, body, segments,
            route.provider if sent_route else None, provider_message_id, status, error_code, reason,
            journey.name == "payment_success", clicked, params, sent_route, signature, cost, currency,
            defer_until, created if sent_route else None, None, None, delivered_at, created, updated,
        )  # fmt: skip
        if provider_message_id is not None and journey.category == "marketing":
            later = updated + timedelta(minutes=5 + rand() * 600)
            for kind, rate, what in (
                ("opt_out", OPT_OUT_RATE, f"reply-{bits(40):010x}"),
                ("provider_code", PROVIDER_CODE_RATE, rng.choice(route.codes)),
            ):
                if rand() < rate:
                    data.complaints.append(
                        (message_id, kind, what, template, signature, journey.name, sent_route, later)
                    )
        if status == "delivered" and journey.goal and rand() < CONVERSION_RATE:
            for _ in range(2 if rand() < SECOND_CONVERSION else 1):
                data.conversions.append(
                    (
                        f"evt-{bits(96):024x}", "order_paid", customer, message_id, journey.name, step,
                        template, variant, sent_route, signature, round(20 + rand() * 480, 2),
                        currency, updated + timedelta(minutes=rand() * 48 * 60),
                    )
                )  # fmt: skip


# -- the database --------------------------------------------------------------------------------


def _admin(server: str, sql: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def create_database(server: str, name: str) -> None:
    _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(server, f'CREATE DATABASE "{name}"')


def database_exists(server: str, name: str) -> bool:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def sqlalchemy_url(server: str, name: str) -> str:
    return f"{server.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} rows/s" if task.speed else "", style="progress.data.speed")


def load(conninfo: str, total: int, seed: int, console: Console) -> dict[str, float]:
    """COPY ``total`` messages and their entries, complaints and conversions. The tables' indexes,
    primary keys and unique constraints are dropped for the COPY and built again after it, with
    the same definitions (the indexes from the models)."""
    data = Data()
    models: list[Any] = [Message, JourneyEntry, Complaint, Conversion]
    indexes = [index for model in models for index in model.__table__.indexes]
    figures: dict[str, float] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        for index in indexes:
            conn.execute(f'DROP INDEX "{index.name}"')
        table_names = [model.__tablename__ for model in models]
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid::regclass::text = ANY(%s) AND contype IN ('p', 'u')",
            (table_names,),
        ).fetchall()
        for table, name, _ in constraints:
            conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
        started = time.perf_counter()
        columns = ", ".join(f'"{c}"' for c in MESSAGE_COLUMNS)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
            RateColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        with progress, conn.cursor() as cursor:
            task = progress.add_task("COPY message", total=total)
            with cursor.copy(f"COPY message ({columns}) FROM STDIN") as copy:
                done = 0
                for row in messages(total, data, seed):
                    copy.write_row(row)
                    done += 1
                    if done % 20000 == 0:
                        progress.update(task, completed=done)
                progress.update(task, completed=done)
            figures["copy_message_s"] = time.perf_counter() - started
            figures["message_rows_per_s"] = total / figures["copy_message_s"]
            tables = (
                (
                    "journey_entry",
                    "workflow_id, journey, customer_id, key, run_id, entered_at, entries, closed",
                    data.entries,
                ),
                (
                    "complaint",
                    "message_id, kind, code, template, signature, journey, route, at",
                    data.complaints,
                ),
                (
                    "conversion",
                    "event_id, name, customer_id, message_id, journey, step, template, variant, route, "
                    "signature, revenue, currency, at",
                    data.conversions,
                ),
            )
            for table, names, rows in tables:
                task = progress.add_task(f"COPY {table}", total=len(rows))
                with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                progress.update(task, completed=len(rows))
        figures["copy_s"] = time.perf_counter() - started
        started = time.perf_counter()
        with console.status(f"building {len(constraints)} keys and {len(indexes)} indexes..."):
            for table, name, definition in constraints:
                conn.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
            for index in indexes:
                conn.execute(str(CreateIndex(index).compile(dialect=postgresql.dialect())))  # type: ignore[arg-type]
        figures["index_s"] = time.perf_counter() - started
        started = time.perf_counter()
        with console.status("VACUUM ANALYZE..."):
            conn.execute("VACUUM ANALYZE")
        figures["analyze_s"] = time.perf_counter() - started
    figures.update(
        messages=data.messages,
        journey_entries=len(data.entries),
        complaints=len(data.complaints),
        conversions=len(data.conversions),
    )
    return figures


def counts(conninfo: str) -> dict[str, Any]:
    with psycopg.connect(conninfo) as conn:
        out: dict[str, Any] = {}
        for table in ("message", "journey_entry", "complaint", "conversion"):
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            out[table] = row[0] if row else 0
        row = conn.execute("SELECT min(created_at), max(created_at) FROM message").fetchone()
        out["first"], out["last"] = row if row else (None, None)
        row = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('message'))").fetchone()
        out["message_size"] = row[0] if row else None
    return out


# -- the queries ---------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    filters: FunnelFilter
    group_by: list[Dimension]


def cases(first: datetime, last: datetime) -> list[Case]:
    middle = first + (last - first) / 2
    week = FunnelFilter(journey="cart_abandonment", since=middle, until=middle + timedelta(days=7))
    return [
        Case("no group_by", FunnelFilter(), []),
        Case("group_by journey", FunnelFilter(), [Dimension.JOURNEY]),
        Case("group_by journey+variant", FunnelFilter(), [Dimension.JOURNEY, Dimension.VARIANT]),
        Case("group_by route", FunnelFilter(), [Dimension.ROUTE]),
        Case("journey + a week", week, []),
    ]


class Recorder:
    """The statements the engine sends while ``on`` (for EXPLAIN of the same SQL, same parameters)."""

    def __init__(self) -> None:
        self.on = False
        self.statements: list[tuple[str, Any]] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if self.on:
            self.statements.append((statement, parameters))


async def measure(url: str, runs: int, first: datetime, last: datetime, console: Console) -> dict[str, Any]:
    engine = create_engine(url)
    await init_db(engine)  # nothing to create: the schema is there (a --reuse adds new indexes)
    recorder = Recorder()
    event.listen(engine.sync_engine, "before_cursor_execute", recorder)
    reports = Reports(session_factory(engine))
    results: dict[str, Any] = {}
    try:
        for case in cases(first, last):
            timings = []
            recorder.on, recorder.statements = True, []
            rows = await reports.funnel(case.filters, case.group_by)  # the warm-up, recorded
            recorder.on = False
            for _ in range(runs):
                started = time.perf_counter()
                rows = await reports.funnel(case.filters, case.group_by)
                timings.append((time.perf_counter() - started) * 1000)
            results[case.name] = {
                "median_ms": statistics.median(timings),
                "max_ms": max(timings),
                "min_ms": min(timings),
                "runs_ms": timings,
                "rows": len(rows),
                "messages": sum(r.messages for r in rows),
                "statements": list(recorder.statements),
            }
            console.print(
                f"{case.name:<26} median {statistics.median(timings):8.1f} ms  max {max(timings):8.1f} ms"
                f"  {len(rows)} rows"
            )
    finally:
        await engine.dispose()
    return results


NODE_WORDS = ("->", "Planning Time", "Execution Time", "JIT:", "Workers")


def explain(conninfo: str, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement: its plan, and the lines that sum it up."""
    out = []
    with psycopg.connect(conninfo) as conn:
        for statement, parameters in statements:
            plan = [
                row[0]
                for row in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).fetchall()
            ]
            summary = [plan[0]] + [
                line
                for line in plan[1:]
                if any(word in line for word in NODE_WORDS) or line.strip().startswith("Buffers:")
            ]
            out.append({"sql": statement, "plan": plan, "summary": summary})
    return out


BENCH_DATABASE = re.compile(r"nudge_bench[a-z0-9_]{0,40}")
"""The names ``--database`` takes: a database of the benchmark's own, never the app's or the tests'
(the benchmark drops and creates it)."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages to load")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per query, after one warm-up")
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server (no database)")
    parser.add_argument("--database", default=DATABASE, help="the benchmark's own database")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="use the kept database as it is, no load")
    args = parser.parse_args(argv)
    if not BENCH_DATABASE.fullmatch(args.database):
        parser.error(
            f"--database {args.database!r}: the benchmark drops and creates its database, so it must be"
            " one of its own, named nudge_bench... (lower case, digits, _)"
        )
    console = Console()
    if console.width < 120:  # not a terminal (a log, CI): wide enough for the plans and the table
        console = Console(width=120)
    conninfo = f"{args.server}/{args.database}"
    url = sqlalchemy_url(args.server, args.database)
    figures: dict[str, Any] = {"started_at": datetime.now().isoformat(timespec="seconds")}
    with psycopg.connect(f"{args.server}/postgres") as conn:
        settings = ("server_version", "shared_buffers", "work_mem", "max_parallel_workers_per_gather", "jit")
        figures["postgres"] = {s: conn.execute(f"SHOW {s}").fetchone()[0] for s in settings}  # type: ignore[index]
    created = False
    """Only a database this run created is dropped at the end: a reused one is the operator's."""
    try:
        if args.reuse and database_exists(args.server, args.database):
            console.print(f"reusing database {args.database}")
        else:
            create_database(args.server, args.database)
            created = True

            async def schema() -> None:
                engine = create_engine(url)
                await init_db(engine)
                await engine.dispose()

            asyncio.run(schema())
            started = time.perf_counter()
            figures["load"] = load(conninfo, args.messages, args.seed, console)
            figures["load"]["total_s"] = time.perf_counter() - started
            load_table = Table("load", "value", title=f"{args.messages:,} messages into {args.database}")
            for key, value in figures["load"].items():
                load_table.add_row(key, f"{value:,.1f}" if isinstance(value, float) else f"{value:,}")
            console.print(load_table)
        figures["data"] = counts(conninfo)
        data = figures["data"]
        console.print(
            f"{data['message']:,} messages ({data['message_size']}), {data['journey_entry']:,} journey"
            f" entries, {data['complaint']:,} complaints, {data['conversion']:,} conversions"
        )
        figures["load_average_before"] = os.getloadavg()
        queries = asyncio.run(measure(url, args.runs, data["first"], data["last"], console))
        figures["load_average_after"] = os.getloadavg()
        slowest = max(queries, key=lambda name: queries[name]["median_ms"])
        plans = explain(conninfo, queries[slowest]["statements"])
        for query in queries.values():
            query.pop("statements")
        figures["queries"] = queries
        figures["explain"] = {"query": slowest, "statements": plans}
    finally:
        if created and not args.keep:
            _admin(args.server, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    table = Table(
        "query", "median ms", "max ms", "rows", "messages", f"median < {TARGET_MS:,.0f} ms",
        title=f"Reports.funnel, warm ({args.runs} runs each)",
    )  # fmt: skip
    for name, q in figures["queries"].items():
        q["target_met"] = q["median_ms"] < TARGET_MS
        verdict = "met" if q["target_met"] else "[bold red]missed[/bold red]"
        table.add_row(
            name,
            f"{q['median_ms']:,.1f}",
            f"{q['max_ms']:,.1f}",
            str(q["rows"]),
            f"{q['messages']:,}",
            verdict,
        )
    console.print(table)
    before, after = figures["load_average_before"], figures["load_average_after"]
    console.print(
        f"load average {before[0]:.1f} before the queries, {after[0]:.1f} after, on {os.cpu_count()} cores"
        " (other work on the machine moves these figures)"
    )
    console.print(f"EXPLAIN (ANALYZE, BUFFERS) of the slowest, {slowest}:")
    for number, plan in enumerate(figures["explain"]["statements"], 1):
        console.print(f"[bold]statement {number}[/bold]: {plan['sql'].split()[0]} ...", highlight=False)
        for line in plan["summary"]:
            console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"funnel-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(figures, indent=2, default=str))
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
