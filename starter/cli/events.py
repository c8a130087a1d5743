"""``nudge event``: send a behaviour event through the gateway."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from starter.cli.common import GatewayOpt, console, fail, gateway_base


def _parse_props(props: list[str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for prop in props:
        key, sep, value = prop.partition("=")
        if not sep or not key:
            raise fail(f"--prop takes key=value, got {prop!r}", code=2)
        parsed[key] = value
    return parsed


def event(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    name: Annotated[str, typer.Argument(help="Event name, e.g. cart_abandoned.")],
    prop: Annotated[
        list[str], typer.Option("--prop", "-p", help="Event property key=value; repeatable.")
    ] = [],  # noqa: B006 - typer reads the default
    event_id: Annotated[str | None, typer.Option(help="Idempotency id [default: a new UUID].")] = None,
    gateway_url: GatewayOpt = None,
) -> None:
    """Send a behaviour event; it starts or advances the customer's journeys.

    Example: [bold]nudge event c1 cart_abandoned -p cart_id=k1 -p url=https://shop/cart/k1[/]
    """
    body = {
        "event_id": event_id or uuid.uuid4().hex,
        "customer_id": customer,
        "name": name,
        "properties": _parse_props(prop),
    }
    try:
        response = httpx.post(f"{gateway_base(gateway_url)}/v1/events", json=body, timeout=30)
    except httpx.HTTPError as exc:
        raise fail(
            f"cannot reach the gateway at {gateway_base(gateway_url)} ({exc}); is `make run` up?"
        ) from exc
    if response.status_code >= 400:
        raise fail(f"gateway refused the event ({response.status_code}): {response.text}", code=2)
    data = response.json()
    if data["duplicate"]:
        console.print(f"event {data['event_id']} was already received; nothing new started")
    table = Table("workflow id", "journey", "action", "reason")
    for touch in data["touched"]:
        table.add_row(touch["workflow_id"], touch["journey"], touch["action"], touch.get("reason") or "")
    if data["touched"]:
        console.print(table)
    elif not data["duplicate"]:
        console.print("no journey is triggered by or waiting for this event")
