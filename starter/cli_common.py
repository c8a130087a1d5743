"""What the ``nudge`` commands share: the consoles, failing with a message, the gateway's URL."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from nudge.settings import get_settings

console = Console()
if not console.is_terminal:
    console = Console(width=160)  # logs and CI output: keep the summary table readable
err = Console(stderr=True, soft_wrap=True)  # error lines stay whole, for grep and editors


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def gateway_base(url: str | None) -> str:
    return (url or get_settings().gateway_url).rstrip("/")


GatewayOpt = Annotated[
    str | None,
    typer.Option("--gateway", help="Gateway URL \\[default: NUDGE_PUBLIC_URL or http://127.0.0.1:8000]."),
]
