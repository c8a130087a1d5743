"""``nudge event``: send a behaviour event through the gateway."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote

import typer

from starter.cli.common import GatewayOpt, check_answer, console, err, fail, gateway_request, print_workflows


def _parse_props(props: list[str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for prop in props:
        key, sep, value = prop.partition("=")
        if not sep or not key:
            raise fail(f"--prop takes key=value, got {prop!r}", code=2)
        parsed[key] = value
    return parsed


def _check_customer(customer: str, gateway_url: str | None, *, required: bool) -> None:
    """Warn about (or, if required, refuse) a customer with no profile: the event would create a
    bare one, without a phone, and its journeys' messages would be blocked (no_phone)."""
    response = gateway_request("GET", f"/v1/customers/{quote(customer, safe='')}", gateway_url)
    if response.status_code == 403 and not required:
        return  # a service's key (events scope) may not read profiles: send without the check
    profile = None if response.status_code == 404 else response
    if profile is not None:
        check_answer(profile)
        profile = profile.json()
    add = f"nudge customers add {customer} --phone <number> --consent"
    if profile is None and required:
        raise fail(f"the gateway has no customer {customer!r}; nothing was sent. Add them: {add}", code=2)
    if profile is None:
        err.print(
            f"[yellow]warning:[/] the gateway has no customer {customer!r}: the event creates a bare "
            f"profile without a phone, so its messages are blocked (no_phone). Add them: {add} "
            "(or pass --require-customer to send nothing for an unknown customer)"
        )
    elif not profile.get("phone"):
        err.print(
            f"[yellow]warning:[/] customer {customer!r} has no phone number, so their messages are "
            f"blocked (no_phone). Give them one: {add}"
        )


def event(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    name: Annotated[str, typer.Argument(help="Event name, e.g. cart_abandoned.")],
    prop: Annotated[
        list[str], typer.Option("--prop", "-p", help="Event property key=value; repeatable.")
    ] = [],  # noqa: B006 - typer reads the default
    event_id: Annotated[str | None, typer.Option(help="Idempotency id \\[default: a new UUID].")] = None,
    require_customer: Annotated[
        bool,
        typer.Option(
            "--require-customer", help="Send nothing (exit 2) if the gateway has no profile for the customer."
        ),
    ] = False,
    gateway_url: GatewayOpt = None,
) -> None:
    """Send a behaviour event; it starts or advances the customer's journeys.

    A customer the gateway does not know gets a warning (a mistyped id?), and the event still goes:
    services may send events before profiles. Add them with [bold]nudge customers add[/].

    Example: [bold]nudge event c1 cart_abandoned -p cart_id=k1 -p url=https://shop/cart/k1[/]
    """
    body = {
        "event_id": event_id or uuid.uuid4().hex,
        "customer_id": customer,
        "name": name,
        "properties": _parse_props(prop),
    }
    _check_customer(customer, gateway_url, required=require_customer)
    response = gateway_request("POST", "/v1/events", gateway_url, json=body)
    if response.status_code >= 400 and response.status_code not in (401, 403):
        raise fail(f"gateway refused the event ({response.status_code}): {response.text}", code=2)
    check_answer(response)
    data = response.json()
    if data["duplicate"]:
        console.print(f"event {data['event_id']} was already received; nothing new started")
    if data["touched"]:
        rows = [(t["workflow_id"], t["journey"], t["action"], t.get("reason") or "") for t in data["touched"]]
        print_workflows(("workflow id", "journey", "action", "reason"), rows, wrap=("reason",))
    elif not data["duplicate"]:
        console.print("no journey is triggered by or waiting for this event")
