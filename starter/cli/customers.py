"""``nudge customers ...``: customer profiles, through the gateway's API."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from starter.cli.common import GatewayOpt, console, err, fail, gateway_base
from starter.csv_customers import customer_record

customers_app = typer.Typer(help="Manage customer profiles.", no_args_is_help=True)


@customers_app.command("import")
def import_customers(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV with a header row.")
    ],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Customers per request.")] = 500,
    gateway_url: GatewayOpt = None,
) -> None:
    """Import customers from a CSV file, with a progress bar.

    Columns: id, name, phone, lifecycle_stage, country, timezone (only id is required; other
    columns become attributes). Phone numbers are normalised to E.164; a batch with an invalid
    row is rejected whole, and the invalid rows are reported with their line numbers.

    Marketing consent: consent_source (where it was given), consent_text (the wording shown) and
    consent_at (ISO time). It is recorded only for customers with no consent on record yet.
    """
    with file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "id" not in reader.fieldnames:
            raise fail(f"{file}: the header row must include an 'id' column", code=2)
        rows = []
        for line, raw in enumerate(reader, start=2):
            if not (raw.get("id") or "").strip():
                raise fail(f"{file}:{line}: empty id", code=2)
            record = customer_record(raw)
            rows.append((line, record))
    url = f"{gateway_base(gateway_url)}/v1/customers:batch"
    imported = 0
    with Progress(
        TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("import", total=len(rows))
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            try:
                response = httpx.post(url, json={"customers": [r for _, r in chunk]}, timeout=60)
            except httpx.HTTPError as exc:
                raise fail(f"cannot reach the gateway at {url} ({exc})") from exc
            if response.status_code == 422:
                detail = response.json().get("detail")
                if isinstance(detail, dict) and "errors" in detail:
                    for error in detail["errors"]:
                        err.print(f"{file}:{chunk[error['index']][0]}: {error['id']}: {error['error']}")
                else:
                    err.print(json.dumps(detail, indent=2))
                raise fail(f"{imported} imported; the batch with the rows above was rejected", code=2)
            response.raise_for_status()
            imported += len(chunk)
            progress.advance(task, len(chunk))
    console.print(f"imported {imported} customers")
