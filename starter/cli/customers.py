"""``nudge customers ...``: customer profiles, through the gateway's API."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nudge.phone import mask
from starter.cli.common import (
    GatewayOpt,
    auth_headers,
    call_gateway,
    check_answer,
    console,
    err,
    fail,
    gateway_base,
)
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
                response = httpx.post(
                    url, json={"customers": [r for _, r in chunk]}, timeout=60, headers=auth_headers()
                )
            except httpx.HTTPError as exc:
                raise fail(f"cannot reach the gateway at {url} ({exc})") from exc
            if response.status_code == 422:
                detail = response.json().get("detail")
                for error in detail if isinstance(detail, list) else []:
                    loc = error.get("loc", [])
                    # ["body", "customers", <index in the batch>, "phone"]: name the CSV line.
                    row = str(chunk[loc[2]][0]) if len(loc) > 2 and isinstance(loc[2], int) else "?"
                    err.print(f"{file}:{row}: {error.get('msg')}")
                if not isinstance(detail, list):
                    err.print(json.dumps(detail, indent=2))
                raise fail(f"{imported} imported; the batch with the rows above was rejected", code=2)
            if response.status_code >= 400:
                progress.stop()
                check_answer(response)
            imported += len(chunk)
            progress.advance(task, len(chunk))
    console.print(f"imported {imported} customers")


@customers_app.command("add")
def add_customer(
    customer: Annotated[str, typer.Argument(help="Customer id, as your services send it in events.")],
    phone: Annotated[
        str,
        typer.Option(help="Mobile number: E.164 (+8613800138000), or national and read in --country."),
    ],
    name: Annotated[str | None, typer.Option(help="Name, for ${name} in templates.")] = None,
    country: Annotated[
        str | None,
        typer.Option(
            help="Country code, e.g. CN; a national --phone is read in it \\[default: NUDGE_DEFAULT_REGION]."
        ),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone for quiet hours, e.g. Asia/Shanghai.")
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="Language of the template variants sent to them, e.g. zh.")
    ] = None,
    lifecycle_stage: Annotated[str, typer.Option(help="Lifecycle stage, as segments read it.")] = "new",
    consent: Annotated[
        bool, typer.Option("--consent", help="Record their consent to marketing SMS (marketing needs it).")
    ] = False,
    consent_source: Annotated[
        str | None,
        typer.Option(help="With --consent: where it was given, e.g. checkout_form \\[default: cli]."),
    ] = None,
    consent_text: Annotated[str, typer.Option(help="With --consent: the wording they agreed to.")] = "",
    gateway_url: GatewayOpt = None,
) -> None:
    """Add one customer, or replace their profile, with their phone number and consent.

    The number is stored in E.164; an invalid one is refused (exit 2) with the gateway's reason.
    Replacing a profile clears what is not given again; consent already on record is kept
    (change it with [bold]nudge consent grant|withdraw[/]).

    Examples:
    [bold]nudge customers add c42 --phone +8613800138000 --consent --consent-source checkout_form[/]
    [bold]nudge customers add c43 --phone 13800138043 --country CN --timezone Asia/Shanghai --language zh[/]
    """
    if not consent and (consent_source or consent_text):
        raise fail("--consent-source and --consent-text describe a consent: add --consent", code=2)
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise fail(
                f"--timezone {timezone!r} is not an IANA time zone, e.g. Asia/Shanghai", code=2
            ) from None
    body: dict[str, Any] = {
        "id": customer,
        "name": name,
        "phone": phone,
        "lifecycle_stage": lifecycle_stage,
        "country": country.upper() if country else None,
        "timezone": timezone,
        "attributes": {"language": language} if language else {},
    }
    if consent:
        source = consent_source or "cli"
        body["consent"] = {"source": source, "text": consent_text, "actor": "nudge customers add"}
    path = f"/v1/customers/{quote(customer, safe='')}"
    # Consent with a profile is recorded only when none is on record: a withdrawal must stand.
    before = call_gateway("GET", f"{path}/consent", gateway_url, missing_ok=True) if consent else None
    call_gateway("PUT", path, gateway_url, json=body)
    stored = call_gateway("GET", path, gateway_url)
    where = ", ".join(v for v in (stored["country"], stored["timezone"], language) if v)
    console.print(f"customer {customer} saved: {mask(stored['phone'])}" + (f" ({where})" if where else ""))
    record = call_gateway("GET", f"{path}/consent", gateway_url)
    current = next(iter(record["current"]), None)
    if current is None:
        console.print(
            f"[yellow]no consent on record[/]: marketing is not sent to {customer} "
            "(add --consent, or run nudge consent grant)"
        )
        return
    state = "granted" if current["granted"] else "withdrawn"
    console.print(f"marketing consent: {state} ({current['source']})")
    if before and before["current"]:
        err.print(
            f"[yellow]note:[/] the consent already on record for {customer} is kept; "
            f"if they agreed again, run nudge consent grant {customer} --source ..."
        )


@customers_app.command("forget")
def forget_customer(
    customer: Annotated[str, typer.Argument(help="The customer's id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="Who asks, for the audit (default: your user name).")
    ] = None,
    gateway_url: GatewayOpt = None,
) -> None:
    """Erase a customer (GDPR, PIPL): end their journeys, remove their name, phone, attributes and
    the numbers and texts of their messages and replies. Counts and the hashed opt-out stay; the
    erasure is recorded. It cannot be undone."""
    import getpass

    if not yes:
        typer.confirm(f"Erase customer {customer!r}? This cannot be undone", abort=True)
    try:
        who = by or getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        who = by or "cli"
    path = f"/v1/customers/{quote(customer, safe='')}:forget"
    done = call_gateway("POST", path, gateway_url, params={"by": who})
    console.print(
        f"erased {customer}: {done['messages']} messages, {done['replies']} replies and "
        f"{done['events']} events cleared; {done['journeys_ended']} journeys ended"
    )
