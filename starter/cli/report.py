"""``nudge report``: the funnel from a running gateway (``/v1/reports/funnel``), as a table or JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from starter.api.services.reports import Dimension as By
from starter.cli.common import GatewayOpt, call_gateway, console, fail

_AGO = re.compile(r"^(\d+)([mhdw])$")
_UNIT = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def moment(text: str | None, option: str) -> str | None:
    """``24h``, ``7d``, ``30m``, ``2w`` ago, or an ISO 8601 time (UTC if it has no offset)."""
    if text is None:
        return None
    if match := _AGO.match(text.strip()):
        ago = timedelta(**{_UNIT[match[2]]: int(match[1])})
        return (datetime.now(UTC) - ago).isoformat()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise fail(
            f"{option} {text!r}: give a time such as 2026-12-01T10:00+08:00, or 24h, 7d, 30m ago", code=2
        ) from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _money(value: float | None, currency: str | None) -> str:
    return (
        "-" if value is None else f"{value:,.2f}{' ' + currency if currency and currency != 'mixed' else ''}"
    )


def report(
    by: Annotated[
        list[By] | None, typer.Option("--by", help="Group by this dimension; repeat for several.")
    ] = None,
    journey: Annotated[str | None, typer.Option(help="Only this journey.")] = None,
    template: Annotated[str | None, typer.Option(help="Only this template.")] = None,
    variant: Annotated[str | None, typer.Option(help="Only this variant, as experiment:variant.")] = None,
    route: Annotated[str | None, typer.Option(help="Only this route.")] = None,
    signature: Annotated[str | None, typer.Option(help="Only this signature.")] = None,
    broadcast: Annotated[str | None, typer.Option(help="Only this broadcast (its id).")] = None,
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601), or 24h, 7d ago.")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601), or 1h ago.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The gateway's answer as JSON.")] = False,
    gateway_url: GatewayOpt = None,
) -> None:
    """The funnel: sent, delivered, clicked, converted, opted out, complaints, cost and revenue.

    Rates are over the messages sent; delivery over those whose receipt came back. A conversion
    is a journey's goal event credited to the last message received within the attribution
    window (NUDGE_ATTRIBUTION_WINDOW, 48 h).

    Examples: [bold]nudge report --journey cart_abandonment --by variant --since 7d[/]
    [bold]nudge report --journey broadcast --by broadcast --by route[/] (every broadcast's funnel)
    """
    params: dict[str, Any] = {
        key: value
        for key, value in {
            "journey": journey,
            "template": template,
            "variant": variant,
            "route": route,
            "signature": signature,
            "broadcast": broadcast,
            "since": moment(since, "--since"),
            "until": moment(until, "--until"),
            "group_by": [b.value for b in by or []],
        }.items()
        if value
    }
    rows = call_gateway("GET", "/v1/reports/funnel", gateway_url, params=params)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    dims = [b.value for b in dict.fromkeys(by or [])]
    table = Table(
        *dims,
        "entered",
        "sent",
        "blocked",
        "delivered",
        "clicked",
        "converted",
        "opted out",
        "complaints",
        "cost",
        "revenue",
        "cost/conv.",
        title="funnel" + (f" of {journey}" if journey else ""),
    )
    for r in rows:
        rates = r["rates"]
        table.add_row(
            *[str(r["group"].get(d) or "-") for d in dims],
            "-" if r["entered"] is None else str(r["entered"]),
            str(r["sent"]),
            str(r["blocked"]) + (f" ({_reasons(r['blocked_by'])})" if r["blocked_by"] else ""),
            f"{r['delivered']} {_rate(rates['delivery'])}",
            f"{r['clicked']} {_rate(rates['click'])}",
            f"{r['converted']} {_rate(rates['conversion'])}",
            f"{r['opted_out']} {_rate(rates['opt_out'])}",
            f"{r['complained']} {_rate(rates['complaint'])}",
            _money(r["cost"], r["currency"]),
            _money(r["revenue"], None),
            _money(r["cost_per_conversion"], r["currency"]),
        )
    console.print(table if rows else "no messages match")


def _reasons(blocked_by: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(blocked_by.items(), key=lambda kv: -kv[1]))
