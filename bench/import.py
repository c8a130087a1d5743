"""Benchmark: ``nudge customers import`` rows per second, on SQLite and on PostgreSQL, side by side
with the old path (``POST /v1/customers:batch`` in batches of 500, as the CLI did) on a sample.

    .venv/bin/python -m bench.import                     # 100,000 rows, both databases
    .venv/bin/python -m bench.import --million           # 1,000,000 rows
    .venv/bin/python -m bench.import --backend sqlite --rows 20000

For each database: a throwaway gateway (with its Temporal dev server) on a fresh database
(PostgreSQL: ``nudge_bench_import`` at 127.0.0.1:5432, made and dropped here), a generated CSV
(national and E.164 numbers, attributes, consent on half the rows, one row in a thousand with an
invalid number), the real CLI as a subprocess, timed from its start to its exit; then the rows
in ``customer`` are counted. The old path posts a sample to the same gateway. Prints a table and
writes JSON under ``bench/results/``. A script, never a timed test.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from rich.console import Console
from rich.table import Table

from starter.csv_customers import customer_record
from starter.stack import Ports, Stack

SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "nudge_bench_import"
TARGET = 10_000.0
"""Rows per second the issue asks of the import."""
HEADER = ["id", "name", "phone", "country", "timezone", "lifecycle_stage", "tier", "city"]
CONSENT = ["consent_source", "consent_text"]


def write_csv(path: Path, rows: int, *, prefix: str) -> int:
    """A CSV of ``rows`` customers; returns how many have an invalid phone (rejected)."""
    invalid = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow([*HEADER, *CONSENT])
        for i in range(rows):
            if i % 1000 == 999:
                phone, invalid = "12345", invalid + 1
            elif i % 3:
                phone = f"138{i % 100_000_000:08d}"  # national, read in the row's country
            else:
                phone = f"+86139{i % 100_000_000:08d}"
            consent = ["crm_import", "Offers by SMS. Reply STOP to opt out."] if i % 2 else ["", ""]
            out.writerow(
                [f"{prefix}{i}", f"Customer {i}", phone, "CN", "Asia/Shanghai", "active", "gold", "上海"]
                + consent
            )
    return invalid


def _admin(sql: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def count_customers(url: str, prefix: str) -> int:
    if url.startswith("postgresql"):
        with psycopg.connect(f"{SERVER}/{DATABASE}") as conn:
            row = conn.execute("SELECT count(*) FROM customer WHERE id LIKE %s", (f"{prefix}%",)).fetchone()
            return int(row[0]) if row else 0
    import sqlite3

    with sqlite3.connect(url.split(":///", 1)[1]) as conn:
        return int(
            conn.execute("SELECT count(*) FROM customer WHERE id LIKE ?", (f"{prefix}%",)).fetchone()[0]
        )


def import_with_cli(stack: Stack, path: Path) -> tuple[float, int, str]:
    """Run ``nudge customers import`` as a user would; its seconds, exit code and last lines."""
    env = {**os.environ, "NUDGE_API_KEY": stack.api_key, "COLUMNS": "120"}
    cmd = [
        sys.executable,
        "-m",
        "starter.cli",
        "customers",
        "import",
        str(path),
        "--gateway",
        stack.gateway_url,
    ]
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    return elapsed, done.returncode, (done.stdout + done.stderr).strip().splitlines()[-1]


def import_old_way(stack: Stack, path: Path) -> float:
    """What ``nudge customers import`` did before: batches of 500 to ``/v1/customers:batch``."""
    with path.open(newline="", encoding="utf-8") as handle:
        records = [customer_record(raw) for raw in csv.DictReader(handle) if raw["phone"] != "12345"]
    started = time.perf_counter()
    with httpx.Client(base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=300) as http:
        for start in range(0, len(records), 500):
            http.post(
                "/v1/customers:batch", json={"customers": records[start : start + 500]}
            ).raise_for_status()
    return len(records) / (time.perf_counter() - started)


def phases(url: str) -> dict[str, float]:
    """The upload's and the commit's seconds, from the import's own timestamps."""
    sql = "SELECT created_at, updated_at, finished_at FROM customer_import ORDER BY created_at DESC LIMIT 1"
    if url.startswith("postgresql"):
        with psycopg.connect(f"{SERVER}/{DATABASE}") as conn:
            row = conn.execute(sql).fetchone()
    else:
        import sqlite3

        with sqlite3.connect(url.split(":///", 1)[1]) as conn:
            row = tuple(datetime.fromisoformat(v) for v in conn.execute(sql).fetchone())
    assert row is not None
    created, updated, finished = row
    return {"upload_s": (updated - created).total_seconds(), "commit_s": (finished - updated).total_seconds()}


def run_backend(backend: str, rows: int, sample: int, work: Path, console: Console) -> dict[str, Any]:
    state = work / backend
    url = f"sqlite+aiosqlite:///{state / 'nudge.db'}"
    overrides = {"NUDGE_LOG_LEVEL": "WARNING"}
    if backend == "postgres":
        _admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        _admin(f'CREATE DATABASE "{DATABASE}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
        overrides["NUDGE_DATABASE_URL"] = url
    stack = Stack(state_dir=state, ports=Ports.free(), ui=False, env_overrides=overrides)
    big, small = work / f"{backend}-import.csv", work / f"{backend}-sample.csv"
    try:
        with console.status(f"{backend}: starting a gateway, writing {rows:,} rows..."):
            stack.start_parts("temporal", "gateway")
            invalid = write_csv(big, rows, prefix="n")
            write_csv(small, sample, prefix="o")
        with console.status(f"{backend}: the old path on {sample:,} rows..."):
            old_rate = import_old_way(stack, small)
        with console.status(f"{backend}: nudge customers import of {rows:,} rows..."):
            seconds, code, last = import_with_cli(stack, big)
        stored, timing = count_customers(url, "n"), phases(url)
        figures = {
            "backend": backend,
            "rows": rows,
            "rejected": invalid,
            "imported": stored,
            "exit_code": code,
            "cli_last_line": last,
            "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds),
            **{k: round(v, 2) for k, v in timing.items()},
            "job_rows_per_s": round(rows / (timing["upload_s"] + timing["commit_s"])),
            "old_sample_rows": sample,
            "old_rows_per_s": round(old_rate),
            "speedup": round(rows / seconds / old_rate, 1),
        }
        if stored != rows - invalid:
            console.print(f"[red]{backend}: {stored} imported, expected {rows - invalid}[/]")
        return figures
    finally:
        stack.stop()
        if backend == "postgres":
            _admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows to import")
    parser.add_argument("--million", action="store_true", help="import 1,000,000 rows")
    parser.add_argument("--sample", type=int, default=5000, help="rows for the old path")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    rows = 1_000_000 if args.million else args.rows
    console = Console(width=150)
    work = Path(tempfile.mkdtemp(prefix="nudge-bench-import-"))
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    try:
        results = [run_backend(b, rows, args.sample, work, console) for b in backends]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table(
        title=f"nudge customers import, {rows:,} rows (target {TARGET:,.0f} rows/s)",
        caption="rows/s: the CLI's whole run, its start included; job rows/s: from the import's open "
        "to its commit; old: /v1/customers:batch in 500s on the sample, as the CLI did before",
    )
    columns = (
        "backend",
        "rows/s",
        "seconds",
        "job rows/s",
        "upload s",
        "commit s",
        "imported",
        "old rows/s",
        "speedup",
    )
    for name in columns:
        table.add_column(name, justify="right")
    for r in results:
        table.add_row(
            r["backend"],
            f"{r['rows_per_s']:,}",
            f"{r['seconds']:,.1f}",
            f"{r['job_rows_per_s']:,}",
            f"{r['upload_s']:,.1f}",
            f"{r['commit_s']:,.1f}",
            f"{r['imported']:,}",
            f"{r['old_rows_per_s']:,}",
            f"{r['speedup']:,.0f}x",
        )
    console.print(table)
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"import-{datetime.now():%Y%m%d-%H%M%S}.json"
    load = os.getloadavg()[0]
    summary = {"rows": rows, "target_rows_per_s": TARGET, "load_average_1m": load, "results": results}
    path.write_text(json.dumps(summary, indent=2))
    console.print(f"load average at the end: {load:.2f} (other processes share the machine's cores)")
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
