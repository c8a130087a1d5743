"""``nudge experiments list|show|conclude``: experiments and their verdicts through a running
gateway (``/v1/experiments``)."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from nudge.experiments import Metric
from starter.cli.common import GatewayOpt, call_gateway, console
from starter.cli.pauses import ByOpt, who

experiments_app = typer.Typer(
    help="A/B experiments: their verdicts, and concluding one.", no_args_is_help=True
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@experiments_app.command("list")
def list_experiments(gateway_url: GatewayOpt = None) -> None:
    """Every experiment a journey's split has run: its mode, metric and winner.

    Example: [bold]nudge experiments list[/]
    """
    rows = call_gateway("GET", "/v1/experiments", gateway_url)
    if not rows:
        console.print("no experiments yet (a journey's split creates one)")
        return
    table = Table("name", "journey", "mode", "metric", "variants", "winner", "since")
    for r in rows:
        table.add_row(
            r["name"],
            r["journey"],
            r["mode"],
            r["metric"],
            ", ".join(r["variants"]),
            r["winner"] or "-",
            r["created_at"],
        )
    console.print(table)


@experiments_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The experiment, e.g. welcome_copy.")],
    metric: Annotated[
        Metric | None, typer.Option(help="Judge on this instead of the experiment's metric.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The gateway's answer as JSON.")] = False,
    gateway_url: GatewayOpt = None,
) -> None:
    """The verdict: each variant's exposures, rate with its 95 % interval and probability to be
    best, the lift over the control with the fixed and the sequential p-values, in plain words.

    A verdict is conclusive only with the minimum sample and a sequential p-value under 0.05, so
    checking it every hour does not make false winners.

    Example: [bold]nudge experiments show welcome_copy --metric converted[/]
    """
    params = {"metric": metric.value} if metric else {}
    report: dict[str, Any] = call_gateway(
        "GET", f"/v1/experiments/{quote(name, safe='')}", gateway_url, params=params
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    verdict = report["verdict"]
    table = Table("variant", "exposed", verdict["metric"], "rate (95% interval)", "P(best)", "allocation")
    for v in verdict["variants"]:
        interval = v["interval"]
        table.add_row(
            v["variant"],
            str(v["exposures"]),
            str(v["successes"]),
            f"{_pct(v['rate'])} ({_pct(interval['low'])}-{_pct(interval['high'])})",
            _pct(v["probability_best"]),
            _pct(report["allocation"].get(v["variant"])),
        )
    console.print(table)
    for c in verdict["comparisons"]:
        lift = "-" if c["lift"] is None else f"{c['lift']:+.1%}"
        console.print(
            f"{c['variant']} vs {c['against']}: lift {lift}, p = {c['p_value']:.3f} (fixed), "
            f"{c['always_valid_p']:.3f} (sequential)"
        )
    winner = report["experiment"]["winner"]
    console.print(
        f"[bold]{verdict['summary']}[/]" + (f"; concluded: everyone gets {winner}" if winner else "")
    )


@experiments_app.command("conclude")
def conclude(
    name: Annotated[str, typer.Argument(help="The experiment, e.g. welcome_copy.")],
    winner: Annotated[str, typer.Option("--winner", help="The variant every new customer gets from now on.")],
    by: ByOpt = None,
    gateway_url: GatewayOpt = None,
) -> None:
    """Send every new customer to the winner, without a deploy; those placed before keep theirs.

    Example: [bold]nudge experiments conclude welcome_copy --winner b[/]
    """
    body = {"winner": winner, "by": who(by)}
    done = call_gateway("POST", f"/v1/experiments/{quote(name, safe='')}:conclude", gateway_url, json=body)
    console.print(
        f"concluded {done['name']}: every new customer gets {done['winner']} (by {done['concluded_by']})"
    )
