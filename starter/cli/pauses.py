"""``nudge pause``, ``nudge resume`` and ``nudge pauses``: hold and release a scope's marketing
sends through a running gateway (``/v1/pauses``)."""

from __future__ import annotations

import getpass
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from starter.cli.common import GatewayOpt, call_gateway, console, fail

TemplateOpt = Annotated[str | None, typer.Option("--template", help="A template code, e.g. cart_reminder.")]
SignatureOpt = Annotated[str | None, typer.Option("--signature", help="A signature (SignName) or sender.")]
JourneyOpt = Annotated[str | None, typer.Option("--journey", help="A journey name, e.g. cart_abandonment.")]
RouteOpt = Annotated[str | None, typer.Option("--route", help="A route name (see `nudge routes`).")]
ByOpt = Annotated[str | None, typer.Option("--by", help="Who acts, for the audit (default: your user name).")]


def _scope(**options: str | None) -> tuple[str, str]:
    given = [(scope, value) for scope, value in options.items() if value]
    if len(given) != 1:
        raise fail("name exactly one of --template, --signature, --journey or --route", code=2)
    return given[0]


def who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def pause(
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit and `nudge pauses`.")],
    template: TemplateOpt = None,
    signature: SignatureOpt = None,
    journey: JourneyOpt = None,
    route: RouteOpt = None,
    by: ByOpt = None,
    gateway_url: GatewayOpt = None,
) -> None:
    """Hold a template's, signature's, journey's or route's marketing sends until `nudge resume`.

    Within about a second, the gate blocks each such send with reason paused:<scope>=<value>
    (a paused route is skipped for the next one). Transactional messages still go.

    Example: [bold]nudge pause --template cart_coupon --reason "coupon link is wrong"[/]
    """
    scope, value = _scope(template=template, signature=signature, journey=journey, route=route)
    body = {"scope": scope, "value": value, "reason": reason, "by": who(by)}
    call_gateway("POST", "/v1/pauses", gateway_url, json=body)
    console.print(f"paused {scope} {value!r}: {reason}")


def resume(
    template: TemplateOpt = None,
    signature: SignatureOpt = None,
    journey: JourneyOpt = None,
    route: RouteOpt = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the audit.")] = None,
    by: ByOpt = None,
    gateway_url: GatewayOpt = None,
) -> None:
    """Let a paused scope's sends go again (a pause by hand or by the complaint-rate breaker).

    The breaker then counts complaints and sends only from now on.

    Example: [bold]nudge resume --template cart_coupon --reason "link fixed"[/]
    """
    scope, value = _scope(template=template, signature=signature, journey=journey, route=route)
    params = {"by": who(by), **({"reason": reason} if reason else {})}
    lifted = call_gateway("DELETE", f"/v1/pauses/{scope}/{quote(value, safe='')}", gateway_url, params=params)
    console.print(f"resumed {scope} {value!r} (paused since {lifted['created_at']}: {lifted['reason']})")


def _figures(row: dict[str, Any]) -> str:
    if row.get("sent") is None:
        return "-"
    return f"{row['complaints']}/{row['sent']} ({row['rate']:.1%})"


def pauses(
    history: Annotated[bool, typer.Option("--history", help="Every pause and resume, newest first.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows of history at most.")] = 50,
    gateway_url: GatewayOpt = None,
) -> None:
    """List the paused scopes, or with --history every pause and resume.

    Each pause shows its source (auto: the complaint-rate breaker; manual), reason, since when,
    who, and the complaints/sent (rate) over the window that opened an automatic one.

    Example: [bold]nudge pauses[/], [bold]nudge pauses --history[/]
    """
    if history:
        events = call_gateway("GET", "/v1/pauses/history", gateway_url, params={"limit": limit})
        table = Table("at", "action", "scope", "value", "source", "by", "reason", "complaints/sent")
        for e in events:
            table.add_row(
                e["at"],
                e["action"],
                e["scope"],
                e["value"],
                e["source"],
                e["by"],
                e["reason"] or "",
                _figures(e),
            )
        console.print(table if events else "no pauses or resumes yet")
        return
    rows = call_gateway("GET", "/v1/pauses", gateway_url)
    if not rows:
        console.print("nothing is paused")
        return
    table = Table("scope", "value", "source", "reason", "since", "by", "complaints/sent (rate)")
    for r in rows:
        table.add_row(
            r["scope"], r["value"], r["source"], r["reason"], r["created_at"], r["created_by"], _figures(r)
        )
    console.print(table)
