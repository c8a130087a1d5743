"""``nudge audiences create|list|show|count|delete``: saved audiences through a running gateway
(``/v1/audiences``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from nudge.audience_text import InvalidAudienceText, parse_where, to_text
from starter.cli.common import GatewayOpt, call_gateway, console, fail
from starter.cli.pauses import ByOpt, who

audiences_app = typer.Typer(
    help="Audiences: saved queries over customer profiles, or uploaded lists of customer ids.",
    no_args_is_help=True,
)
CHUNK_IDS = 5_000
CHUNK_BYTES = 512 * 1024
"""A chunk of ids per request: well under the gateway's 10,000 ids and its body limit (1 MiB)."""
WHERE_HELP = """Who is in it, as text or as the JSON tree. Text: conditions joined with `and`, `or`,
`not` and parentheses, each `FIELD OP VALUE` with OP one of = != < <= > >= in, not in, has, has any,
has all, within, not within, before, after, or `FIELD exists` / `FIELD missing`. Fields:
lifecycle_stage, country, timezone, language, tags, last_active (within 30d, 12h, 2w), created_at,
consent (granted, withdrawn, unknown), attributes.KEY (numbers and true/false are typed; quote
text: "12"), experiment.NAME (its variant). Lists: (a, b)."""


def _path(name: str) -> str:
    return f"/v1/audiences/{quote(name, safe='')}"


def _definition(where: str) -> dict[str, Any]:
    """The JSON tree of ``--where``: JSON as is, text parsed (a syntax error exits 2 here; the
    gateway checks fields, operators and types)."""
    if where.lstrip().startswith("{"):
        try:
            tree = json.loads(where)
        except ValueError as exc:
            raise fail(f"--where is not valid JSON: {exc}", code=2) from None
        if not isinstance(tree, dict):
            raise fail("--where JSON must be an object", code=2)
        return tree
    try:
        return parse_where(where)
    except InvalidAudienceText as exc:
        raise fail(f"--where: {exc}", code=2) from None


def _read_ids(path: Path) -> list[str]:
    """The first column of the CSV, its header (``id``/``customer_id``) and blank lines skipped."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            cells = [row[0].strip() for row in csv.reader(file) if row and row[0].strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {path}: {exc}", code=2) from None
    if cells and cells[0].lower() in ("id", "customer_id"):
        cells = cells[1:]
    return cells


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for customer_id in ids:
        if chunk and (len(chunk) == CHUNK_IDS or size + len(customer_id) + 4 > CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(customer_id)
        size += len(customer_id.encode()) + 4
    if chunk:
        yield chunk


@audiences_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Its name: a-z, 0-9, _ . - (e.g. active-cn).")],
    where: Annotated[str | None, typer.Option("--where", help=WHERE_HELP)] = None,
    ids: Annotated[
        Path | None, typer.Option("--ids", help="A CSV of customer ids (first column): a list.")
    ] = None,
    description: Annotated[str, typer.Option("--description", help="What it is for.")] = "",
    by: ByOpt = None,
    gateway_url: GatewayOpt = None,
) -> None:
    """Create or replace an audience, from a query (--where) or a CSV of ids (--ids); prints how
    many customers it holds now.

    Examples:
      [bold]nudge audiences create active-cn --where 'lifecycle_stage in (active, vip)
      and country = CN and last_active within 30d and consent = granted'[/]
      [bold]nudge audiences create vip-list --ids vips.csv[/]
    """
    if (where is None) == (ids is None):
        raise fail("give exactly one of --where or --ids", code=2)
    params = {"by": who(by)}
    if where is not None:
        body = {"name": name, "kind": "query", "where": _definition(where), "description": description}
        call_gateway("POST", "/v1/audiences", gateway_url, json=body, params=params)
        count = call_gateway("GET", f"{_path(name)}/count", gateway_url)["count"]
        console.print(f"audience {name} saved: {count:,} customers now")
        return
    assert ids is not None
    members = _read_ids(ids)
    body = {"name": name, "kind": "list", "description": description}
    call_gateway("POST", "/v1/audiences", gateway_url, json=body, params=params)
    unknown, stored = 0, 0
    shown: list[str] = []
    columns = (TextColumn("uploading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("ids", total=len(members))
        for number, chunk in enumerate(_chunks(members)):
            answer = call_gateway(
                "PUT",
                f"{_path(name)}/members",
                gateway_url,
                json={"ids": chunk},
                params={"replace": number == 0},
            )
            unknown += answer["unknown"]
            shown += answer["unknown_ids"][: 10 - len(shown)]
            stored = answer["members"]
            progress.advance(task, len(chunk))
    if not members:  # an empty file empties the list
        stored = call_gateway(
            "PUT", f"{_path(name)}/members", gateway_url, json={"ids": []}, params={"replace": True}
        )["members"]
    console.print(f"audience {name} saved: {stored:,} customers from {len(members):,} ids")
    if unknown:
        console.print(f"{unknown:,} ids are no customer (or an erased one), not stored: {', '.join(shown)}")


@audiences_app.command("list")
def list_audiences(gateway_url: GatewayOpt = None) -> None:
    """Every audience: its kind, definition and who changed it last.

    Example: [bold]nudge audiences list[/]
    """
    rows = call_gateway("GET", "/v1/audiences", gateway_url)
    if not rows:
        console.print("no audiences yet (nudge audiences create)")
        return
    table = Table("name", "kind", "who", "description", "updated", "by")
    for r in rows:
        who_is_in = to_text(r["definition"]) if r["definition"] else "uploaded ids"
        table.add_row(r["name"], r["kind"], who_is_in, r["description"], r["updated_at"], r["updated_by"])
    console.print(table)


@audiences_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The audience.")],
    sample: Annotated[
        int, typer.Option("--sample", min=0, max=200, help="List this many members (phones masked).")
    ] = 0,
    gateway_url: GatewayOpt = None,
) -> None:
    """An audience: who is in it, how many now, and with --sample N the first N members.

    Example: [bold]nudge audiences show active-cn --sample 20[/]
    """
    audience = call_gateway("GET", _path(name), gateway_url)
    count = call_gateway("GET", f"{_path(name)}/count", gateway_url)["count"]
    console.print(f"[bold]{audience['name']}[/] ({audience['kind']}): {count:,} customers now")
    if audience["definition"]:
        console.print(f"where {to_text(audience['definition'])}", markup=False, highlight=False)
    if audience["description"]:
        console.print(audience["description"], markup=False)
    created, updated = (
        f"{audience[f'{what}_by']} at {audience[f'{what}_at']}" for what in ("created", "updated")
    )
    console.print(f"created by {created}; updated by {updated}")
    if not sample:
        return
    members = call_gateway("GET", f"{_path(name)}/sample", gateway_url, params={"size": sample})
    table = Table("id", "name", "phone", "stage", "country", "timezone", "language", "tags")
    for m in members:
        table.add_row(
            m["id"],
            m["name"] or "",
            m["phone"] or "",
            m["lifecycle_stage"],
            m["country"] or "",
            m["timezone"] or "",
            m["language"] or "",
            ", ".join(m["tags"]),
        )
    console.print(table)


@audiences_app.command("count")
def count(name: Annotated[str, typer.Argument(help="The audience.")], gateway_url: GatewayOpt = None) -> None:
    """How many customers the audience holds now, before anything is sent.

    Example: [bold]nudge audiences count active-cn[/]
    """
    console.print(f"{call_gateway('GET', f'{_path(name)}/count', gateway_url)['count']}")


@audiences_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The audience.")],
    by: ByOpt = None,
    gateway_url: GatewayOpt = None,
) -> None:
    """Delete an audience (a list's members with it).

    Example: [bold]nudge audiences delete old-list[/]
    """
    call_gateway("DELETE", _path(name), gateway_url, params={"by": who(by)})
    console.print(f"audience {name} deleted")
