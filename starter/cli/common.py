"""What the ``nudge`` commands share: the consoles, failing with a message, the gateway's URL."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
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


def call_gateway(
    method: str, path: str, gateway_url: str | None, *, missing_ok: bool = False, **kwargs: Any
) -> Any:
    """One request to the gateway, its JSON answer; an unreachable gateway (or its 5xx) exits 1,
    a refusal (4xx) exits 2 with the gateway's reason.

    Args:
        missing_ok: answer None for a 404 (an unknown customer, say) instead of exiting.
    """
    base = gateway_base(gateway_url)
    try:
        response = httpx.request(method, f"{base}{path}", timeout=30, **kwargs)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the gateway at {base} ({exc}); is `make run` up?") from exc
    if missing_ok and response.status_code == 404:
        return None
    if response.status_code >= 400:
        code = 2 if response.status_code < 500 else 1
        raise fail(f"{refusal_detail(response)} ({response.status_code})", code=code)
    return response.json()


def refusal_detail(response: httpx.Response) -> str:
    """The gateway's reason: its ``detail``, one line per field for a validation error."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(detail, list):  # request validation: one line per field
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}" for d in detail)
    if isinstance(detail, dict) and isinstance(detail.get("errors"), list):  # per record, e.g. a phone
        reasons = "; ".join(f"{e.get('id')}: {e.get('error')}" for e in detail["errors"])
        return f"{detail.get('message', 'refused')}: {reasons}"
    return str(detail)
