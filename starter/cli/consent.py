"""``nudge consent show|grant|withdraw``: a customer's marketing consent and its audit trail."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from starter.cli.common import GatewayOpt, call_gateway, console

consent_app = typer.Typer(
    help="Record and audit customers' consent to marketing SMS (marketing needs it).", no_args_is_help=True
)

CustomerArg = Annotated[str, typer.Argument(help="Customer id.")]
SourceOpt = Annotated[
    str, typer.Option("--source", help="Where it was given or withdrawn, e.g. checkout_form, call_center.")
]


@consent_app.command("show")
def consent_show(customer: CustomerArg, gateway_url: GatewayOpt = None) -> None:
    """Show the customer's current consent and its audit trail (every grant and withdrawal)."""
    data = call_gateway("GET", f"/v1/customers/{customer}/consent", gateway_url)
    if not data["current"]:
        console.print(f"{customer}: [yellow]no consent on record[/]; marketing is not sent")
    for current in data["current"]:
        state = "[green]granted[/]" if current["granted"] else "[red]withdrawn[/]"
        console.print(f"{customer}: {current['purpose']} {current['channel']} {state} ({current['source']})")
    if data["history"]:
        table = Table("at", "action", "source", "text", "recorded by", title="audit trail")
        for event in data["history"]:
            table.add_row(event["at"], event["action"], event["source"], event["text"], event["actor"] or "")
        console.print(table)


@consent_app.command("grant")
def consent_grant(
    customer: CustomerArg,
    source: SourceOpt,
    text: Annotated[str, typer.Option(help="The consent wording the customer saw.")] = "",
    at: Annotated[str | None, typer.Option(help="When it was given (ISO 8601) \\[default: now].")] = None,
    gateway_url: GatewayOpt = None,
) -> None:
    """Record the customer's consent to marketing SMS.

    Example: [bold]nudge consent grant c1 --source checkout_form --text "Texts about offers. Reply STOP to
    opt out."[/]
    """
    body = {"source": source, "text": text, "at": at, "actor": "nudge consent"}
    call_gateway("POST", f"/v1/customers/{customer}/consent", gateway_url, json=body)
    console.print(f"{customer}: consent to marketing recorded ({source})")


@consent_app.command("withdraw")
def consent_withdraw(
    customer: CustomerArg,
    source: SourceOpt,
    text: Annotated[str, typer.Option(help="How they asked, e.g. the e-mail's words.")] = "",
    gateway_url: GatewayOpt = None,
) -> None:
    """Record that the customer withdrew consent; marketing to them stops at once."""
    body = {"source": source, "text": text, "actor": "nudge consent"}
    call_gateway("POST", f"/v1/customers/{customer}/consent:withdraw", gateway_url, json=body)
    console.print(f"{customer}: consent withdrawn ({source}); no more marketing")
