"""Benchmark: counting audiences over a million customer profiles on PostgreSQL, and paging one.

    .venv/bin/python -m bench.audience                       # 1,000,000 profiles, then the reads
    .venv/bin/python -m bench.audience --customers 200000 --keep
    .venv/bin/python -m bench.audience --reuse               # the kept database, no new load

Creates a database of its own (``nudge_bench_audience``; ``--database`` must be named
``nudge_bench...``), makes the schema with ``init_db``, loads profiles (stages, countries, zones,
languages, tags, ages), consent, about two events per customer over half a year, experiment
assignments and a 100,000-id list audience through COPY, ANALYZEs, then times
``Audiences.count`` warm for a few realistic audiences (medians of ``--runs``), prints EXPLAIN
(ANALYZE, BUFFERS) of each, and times a broadcast's full page-through with ``bounds`` (ids per
second), with and without reading each batch's ``members``. Writes JSON under ``bench/results/``
and drops the database if it created it (unless ``--keep``). A script, never a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex

from activities.audiences import Audiences
from bench.funnel import (
    BENCH_DATABASE,
    SERVER,
    Recorder,
    create_database,
    database_exists,
    explain,
    sqlalchemy_url,
)
from nudge.audience_text import parse_where
from nudge.audiences import AudienceIn
from nudge.store import (
    Assignment,
    AudienceMember,
    Consent,
    Customer,
    EventRecord,
    create_engine,
    init_db,
    session_factory,
)
from starter.api.services import audiences as service

DATABASE = "nudge_bench_audience"
TARGET_MS = 1000.0
"""Counting an audience of a million profiles answers in about a second."""
AUDIENCES = {
    "issue": "lifecycle_stage in (active, vip) and country = CN and last_active within 30d"
    " and consent = granted",
    "country": "country = CN",
    "vip-en": "tags has vip and language = en",
    "stage": "lifecycle_stage = vip",
    "variant": "experiment.welcome_copy = b and consent = granted",
    "lapsed": "last_active not within 90d and consent = granted and attributes.age >= 30",
    "anyof": "(country in (HK, SG) or language = ja) and not tags has churned",
}
LIST_SIZE = 100_000
STAGES = {"new": 0.3, "active": 0.4, "vip": 0.05, "churned": 0.25}
COUNTRIES = {"CN": (0.7, "Asia/Shanghai"), "HK": (0.1, "Asia/Hong_Kong"), "US": (0.1, "America/New_York"),
             "SG": (0.05, "Asia/Singapore"), None: (0.05, None)}  # fmt: skip
LANGUAGES = {"zh": 0.6, "en": 0.3, "ja": 0.05, None: 0.05}
TAGS = {"vip": 0.03, "sale": 0.2, "beta": 0.01, "churned": 0.1, "app": 0.4}
CONSENT = {"granted": 0.6, "withdrawn": 0.1, None: 0.3}
NOW = datetime.now(UTC).replace(microsecond=0)


def _pick(weights: dict[Any, Any], rng: random.Random, k: int) -> list[Any]:
    items = list(weights)
    w = [v[0] if isinstance(v, tuple) else v for v in weights.values()]
    return rng.choices(items, weights=w, k=k)


def rows(total: int, seed: int) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(table, row) for every row of the load: customers in random id order, as a CRM's would be."""
    rng = random.Random(seed)
    order = list(range(total))
    rng.shuffle(order)
    stages, countries = _pick(STAGES, rng, total), _pick(COUNTRIES, rng, total)
    languages, consents = _pick(LANGUAGES, rng, total), _pick(CONSENT, rng, total)
    rand = rng.random
    for index, number in enumerate(order):
        customer_id = f"cust-{number:07d}"
        country = countries[index]
        attributes: dict[str, Any] = {"tags": [t for t, share in TAGS.items() if rand() < share]}
        if languages[index] is not None:
            attributes["language"] = languages[index]
        if rand() < 0.8:
            attributes["age"] = rng.randrange(16, 80)
        created = NOW - timedelta(days=rand() * 720)
        # About two events each; a customer's activity clusters around their own last visit.
        last = rand() ** 2 * 180
        visits = range(rng.choice((0, 1, 1, 2, 2, 3, 5)))
        events = [NOW - timedelta(days=last + n * rand() * 20) for n in visits]
        # The last column is last_active_at, which the gateway keeps as it stores the events.
        yield (
            "customer",
            (customer_id, f"Name {number}", f"+86138{number:08d}", stages[index], country,
             COUNTRIES[country][1], json.dumps(attributes), created, None, max(events, default=None)),
        )  # fmt: skip
        if consents[index] is not None:
            granted = consents[index] == "granted"
            yield "consent", (customer_id, "sms", "marketing", "import:crm", "", granted, created, created)
        for n, at in enumerate(events):
            yield "event", (f"{customer_id}-e{n}", customer_id, "page_viewed", "{}", at, at, "[]")
        if rand() < 0.3:
            variant = rng.choice("abc")
            yield "assignment", ("welcome_copy", variant, customer_id, f"journey:onboarding:{customer_id}",
                                 "onboarding", "weights", "{}", created)  # fmt: skip
        if number < LIST_SIZE:
            yield "audience_member", ("uploaded", customer_id)


COLUMNS = {
    "customer": "id, name, phone, lifecycle_stage, country, timezone, attributes, created_at, erased_at,"
    " last_active_at",
    "consent": "customer_id, channel, purpose, source, text, granted, at, updated_at",
    "event": "event_id, customer_id, name, properties, occurred_at, received_at, workflow_ids",
    "assignment": "experiment, variant, customer_id, workflow_id, journey, reason, allocation, at",
    "audience_member": "audience, customer_id",
}
MODELS: list[Any] = [Customer, Consent, EventRecord, Assignment, AudienceMember]


def load(conninfo: str, total: int, seed: int, console: Console) -> dict[str, float]:
    """COPY every table at once (one COPY per table, rows buffered per table), with the indexes and
    keys dropped and built again after, with the models' definitions."""
    indexes = [index for model in MODELS for index in model.__table__.indexes]
    figures: dict[str, float] = {}
    buffered: dict[str, list[tuple[Any, ...]]] = {table: [] for table in COLUMNS}
    started = time.perf_counter()
    with console.status(f"generating {total:,} profiles..."):
        for table, row in rows(total, seed):
            buffered[table].append(row)
    figures["generate_s"] = time.perf_counter() - started
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        for index in indexes:
            conn.execute(f'DROP INDEX "{index.name}"')
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid::regclass::text = ANY(%s) AND contype IN ('p', 'u')",
            ([m.__tablename__ for m in MODELS],),
        ).fetchall()
        for table, name, _ in constraints:
            conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
        started = time.perf_counter()
        with conn.cursor() as cursor:
            for table, names in COLUMNS.items():
                with (
                    console.status(f"COPY {table} ({len(buffered[table]):,} rows)..."),
                    cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy,
                ):
                    for row in buffered[table]:
                        copy.write_row(row)
                figures[f"{table}_rows"] = len(buffered[table])
        figures["copy_s"] = time.perf_counter() - started
        figures["copy_rows_per_s"] = sum(len(r) for r in buffered.values()) / figures["copy_s"]
        started = time.perf_counter()
        with console.status(f"building {len(constraints)} keys and {len(indexes)} indexes..."):
            for table, name, definition in constraints:
                conn.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
            for index in indexes:
                conn.execute(str(CreateIndex(index).compile(dialect=postgresql.dialect())))  # type: ignore[arg-type]
        figures["index_s"] = time.perf_counter() - started
        with console.status("VACUUM ANALYZE..."):
            conn.execute("VACUUM ANALYZE")
    return figures


async def measure(url: str, runs: int, console: Console) -> dict[str, Any]:
    """count() of each audience warm (``runs`` after a recorded warm-up), then the page-throughs."""
    engine = create_engine(url)
    await init_db(engine)
    sessions = session_factory(engine)
    recorder = Recorder()
    event.listen(engine.sync_engine, "before_cursor_execute", recorder)
    audiences = Audiences(sessions)
    results: dict[str, Any] = {"counts": {}, "pages": {}}
    try:
        for name, text in AUDIENCES.items():
            await service.save(sessions, AudienceIn(name=name, where=parse_where(text)), by="bench")
        await service.save(sessions, AudienceIn(name="uploaded", kind="list"), by="bench")
        for name in [*AUDIENCES, "uploaded"]:
            recorder.on, recorder.statements = True, []
            count = await audiences.count(name)
            recorder.on = False
            timings = []
            for _ in range(runs):
                started = time.perf_counter()
                await audiences.count(name)
                timings.append((time.perf_counter() - started) * 1000)
            results["counts"][name] = {
                "where": AUDIENCES.get(name, f"{LIST_SIZE:,} uploaded ids"),
                "count": count,
                "median_ms": statistics.median(timings),
                "runs_ms": timings,
                "statements": [s for s in recorder.statements if "count(" in s[0]],
            }
            console.print(f"count {name:<9} {count:>9,}  median {statistics.median(timings):8.1f} ms")
        for name, with_members in (
            ("issue", False),
            ("country", False),
            ("country", True),
            ("uploaded", True),
        ):
            results["pages"][f"{name}{'+members' if with_members else ''}"] = await page_through(
                audiences, name, members=with_members
            )
            figures = results["pages"][f"{name}{'+members' if with_members else ''}"]
            console.print(
                f"page {name:<9} members={with_members!s:<5} {figures['ids']:>9,} ids"
                f" in {figures['seconds']:6.2f} s"
                f"  {figures['ids_per_s']:>10,.0f} ids/s  slowest call {figures['slowest_call_ms']:.1f} ms"
            )
    finally:
        await engine.dispose()
    return results


async def page_through(audiences: Audiences, name: str, *, members: bool) -> dict[str, Any]:
    """A broadcast's walk with its defaults (window 8, batches of 100): ids per second."""
    after, done, ids, calls, slowest = None, False, 0, 0, 0.0
    started = time.perf_counter()
    while not done:
        began = time.perf_counter()
        bounds, done = await audiences.bounds(name, after=after, batches=8, batch_size=100)
        slowest = max(slowest, time.perf_counter() - began)
        calls += 1
        for upto in bounds:
            if members:
                ids += len(await audiences.members(name, after=after, upto=upto))
            after = upto
    seconds = time.perf_counter() - started
    if not members:
        ids = await audiences.count(name)  # every id was passed over once (not timed)
    return {"ids": ids, "seconds": seconds, "ids_per_s": ids / seconds, "bounds_calls": calls,
            "slowest_call_ms": slowest * 1000}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="profiles to load")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per count, after one warm-up")
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server (no database)")
    parser.add_argument("--database", default=DATABASE, help="the benchmark's own database")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="use the kept database as it is, no load")
    args = parser.parse_args(argv)
    if not BENCH_DATABASE.fullmatch(args.database):
        parser.error(
            f"--database {args.database!r}: it is dropped and created, so it must be named nudge_bench..."
        )
    console = Console(width=max(Console().width, 120))
    conninfo, url = f"{args.server}/{args.database}", sqlalchemy_url(args.server, args.database)
    figures: dict[str, Any] = {
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "customers": args.customers,
    }
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
            figures["load"] = load(conninfo, args.customers, args.seed, console)
            console.print(", ".join(f"{k} {v:,.1f}" for k, v in figures["load"].items()))
        figures["load_average_before"] = os.getloadavg()
        results = asyncio.run(measure(url, args.runs, console))
        figures["load_average_after"] = os.getloadavg()
        for count in results["counts"].values():
            count["explain"] = [plan["summary"] for plan in explain(conninfo, count.pop("statements"))]
        figures.update(results)
    finally:
        if created and not args.keep:
            with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    table = Table(
        "audience",
        "where",
        "count",
        "median ms",
        f"< {TARGET_MS:,.0f} ms",
        title=f"Audiences.count, warm ({args.runs} runs)",
    )
    for name, c in figures["counts"].items():
        c["target_met"] = c["median_ms"] < TARGET_MS
        table.add_row(
            name,
            c["where"],
            f"{c['count']:,}",
            f"{c['median_ms']:,.1f}",
            "met" if c["target_met"] else "missed",
        )
    console.print(table)
    for name, c in figures["counts"].items():
        console.print(f"[bold]{name}[/bold]:", highlight=False)
        for line in (c["explain"] or [[]])[0]:
            console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    before, after = figures["load_average_before"], figures["load_average_after"]
    console.print(f"load average {before[0]:.1f} before, {after[0]:.1f} after, on {os.cpu_count()} cores")
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"audience-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(figures, indent=2, default=str))
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
