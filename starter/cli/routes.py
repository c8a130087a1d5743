"""``nudge routes``: the provider routes in effect and the callback URLs for the consoles."""

from __future__ import annotations

from rich.table import Table

from nudge.errors import ConfigurationError
from nudge.settings import get_settings
from starter.cli.common import console, fail


def routes() -> None:
    """Show the provider routes from NUDGE_ROUTES (or the local simulator's) and the callback URLs
    to enter in each provider's console."""
    from pydantic import ValidationError

    try:
        settings = get_settings()
        configured = settings.effective_routes
    except ConfigurationError as exc:
        raise fail(str(exc), 2) from None
    except (ValidationError, ValueError) as exc:
        raise fail(f"NUDGE_ROUTES is not valid: {exc}", 2) from None
    table = Table(title="Routes (tried in priority order among those whose rules match)")
    for column in ("priority", "name", "provider", "endpoint", "signature", "rules", "tps", "cost/segment"):
        table.add_column(column)
    for route in sorted(configured, key=lambda r: r.priority):
        rules = [
            f"{name}={','.join(map(str, values))}"
            for name in ("countries", "prefixes", "carriers", "tiers", "languages", "categories")
            if (values := getattr(route, name))
        ]
        table.add_row(
            str(route.priority),
            route.name,
            route.provider,
            route.endpoint,
            route.signature
            + (
                f" ({', '.join(f'{k}: {v}' for k, v in route.signatures.items())})"
                if route.signatures
                else ""
            ),
            "; ".join(rules) or "any",
            f"{route.tps:g}",
            f"{route.cost_per_segment:g} {route.currency}",
        )
    console.print(table)
    if not settings.routes:
        console.print("[dim]NUDGE_ROUTES is empty: these are the local carrier simulator's routes.[/]")
    console.print("\n[bold]Callback URLs[/] to enter in the providers' consoles (whole, for copying):")
    for label, provider, kinds in (
        ("Aliyun SmsReport / SmsUp", "aliyun", ("report", "up")),
        (
            "Twilio status callback (sent with each message) / the number's inbound webhook",
            "twilio",
            ("status", "inbound"),
        ),
        ("Tencent status report / reply", "tencent", ("report", "reply")),
    ):
        console.print(f"  {label}:")
        for kind in kinds:
            console.print(f"    {settings.callback_url(provider, kind)}", soft_wrap=True, highlight=False)
