"""The ``nudge`` command line: run the stack, send events, inspect journeys, import customers."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nudge.contracts import STATE
from nudge.logging import configure_logging
from nudge.settings import get_settings
from starter.cli_common import GatewayOpt, call_gateway, console, err
from starter.cli_common import fail as _fail
from starter.cli_common import gateway_base as _gateway
from starter.cli_pauses import pause, pauses, resume
from starter.cli_registry import signatures_app, templates_app
from starter.csv_customers import customer_record

app = typer.Typer(
    name="nudge",
    help="Nudge: lifecycle SMS journeys as durable Temporal workflows.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
customers_app = typer.Typer(help="Manage customer profiles.", no_args_is_help=True)
app.add_typer(customers_app, name="customers")
consent_app = typer.Typer(
    help="Record and audit customers' consent to marketing SMS (marketing needs it).", no_args_is_help=True
)
app.add_typer(consent_app, name="consent")

# ----- the stack ------------------------------------------------------------------------------


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Play the demo once the stack is up.")] = True,
    real_delays: Annotated[
        bool, typer.Option(help="Use the journeys' real delays (hours) instead of demo seconds.")
    ] = False,
) -> None:
    """Start the local stack, play the demo, and serve until Ctrl-C (what `make run` calls).

    Starts the Temporal dev server (UI on :8233), the worker, the gateway (:8000) and the
    carrier simulator (:8100). State is kept in [bold].nudge/[/] and reused on the next run.
    """
    from starter.demo import PLAYGROUND_ENV
    from starter.stack import Ports, Stack, StackError

    settings = get_settings()
    overrides = {} if real_delays else dict(PLAYGROUND_ENV)
    stack = Stack(
        state_dir=settings.state_dir.resolve(),
        ports=Ports(
            gateway=settings.gateway_port,
            simulator=settings.simulator_port,
            ui=settings.temporal_ui_port,
            temporal=int(settings.temporal_address.rsplit(":", 1)[-1]),
        ),
        env_overrides=overrides,
    )
    with console.status("starting Temporal, worker, gateway and simulator..."):
        try:
            stack.start()
        except StackError as exc:
            raise _fail(str(exc)) from exc
    try:
        console.print(f"[green]stack is up[/]; logs in {stack.state_dir / 'logs'}")
        if demo:
            _play_demo(stack)
        _print_urls(stack)
        console.print("serving; press [bold]Ctrl-C[/] to stop")
        while all(proc.poll() is None for _, proc in stack.children):
            try:
                import time

                time.sleep(0.5)
            except KeyboardInterrupt:
                break
        else:
            dead = [name for name, proc in stack.children if proc.poll() is not None]
            err.print(f"[red]{', '.join(dead)} stopped unexpectedly[/]; see {stack.state_dir / 'logs'}")
    except KeyboardInterrupt:
        pass
    finally:
        with console.status("stopping..."):
            stack.stop()
        console.print("stopped")


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="Keep the throwaway state directory.")] = False,
) -> None:
    """Play the demo on a throwaway stack; exit 0 only if every journey ended as expected.

    Uses free ports and a temporary state directory, so it runs beside `nudge up`.
    """
    from starter.demo import PLAYGROUND_ENV
    from starter.stack import Ports, Stack, StackError

    state_dir = Path(tempfile.mkdtemp(prefix="nudge-demo-"))
    stack = Stack(
        state_dir=state_dir,
        ports=Ports.free(),
        env_overrides=dict(PLAYGROUND_ENV),
        ui=False,
    )
    ok = False
    try:
        with console.status("starting a throwaway stack..."):
            stack.start()
        ok = _play_demo(stack)
    except StackError as exc:
        raise _fail(str(exc)) from exc
    finally:
        stack.stop()
        if keep:
            console.print(f"state kept in {state_dir}")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
    if not ok:
        raise _fail("some journeys did not reach their expected end state")
    console.print("[green]demo passed[/]: every journey reached its expected end state")


def _play_demo(stack: Any) -> bool:
    from nudge.temporal import connect
    from starter.demo import run_demo, summary_table

    settings = get_settings().model_copy(update={"temporal_address": stack.temporal_address})

    async def play() -> list[Any]:
        client = await connect(settings, wait=30)
        return await run_demo(
            gateway_url=stack.gateway_url, simulator_url=stack.simulator_url, client=client, console=console
        )

    rows = asyncio.run(play())
    console.print(summary_table(rows))
    return all(row.ok for row in rows)


def _print_urls(stack: Any) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("Temporal UI", stack.ui_url)
    table.add_row("Gateway", stack.gateway_url)
    table.add_row("OpenAPI docs", f"{stack.gateway_url}/docs")
    table.add_row("Simulator ledger", f"{stack.simulator_url}/_sim/ledger")
    console.print(table)


@app.command()
def worker() -> None:
    """Run the worker (journeys and activities) until interrupted."""
    import worker as worker_module

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(worker_module.main())


@app.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="Bind address [default: NUDGE_GATEWAY_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: NUDGE_GATEWAY_PORT, 8000].")] = None,
) -> None:
    """Serve the HTTP gateway (events, webhooks, short links) with uvicorn."""
    import uvicorn

    settings = get_settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    uvicorn.run(
        "starter.gateway:create_app",
        factory=True,
        host=host or settings.gateway_host,
        port=port or settings.gateway_port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
    )


@app.command()
def simulator(
    port: Annotated[int | None, typer.Option(help="Port [default: NUDGE_SIMULATOR_PORT, 8100].")] = None,
) -> None:
    """Serve the local carrier simulator."""
    import uvicorn

    from simulator.app import SimConfig, create_app

    settings = get_settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    config = SimConfig(
        latency_ms=settings.simulator_latency_ms,
        receipt_delay_ms=settings.simulator_receipt_delay_ms,
        failure_rate=settings.simulator_failure_rate,
        # The provider consoles' callback settings, pointed at this stack's gateway.
        aliyun_report_url=settings.callback_url("aliyun", "report"),
        aliyun_up_url=settings.callback_url("aliyun", "up"),
        tencent_report_url=settings.callback_url("tencent", "report"),
        tencent_reply_url=settings.callback_url("tencent", "reply"),
        twilio_inbound_url=settings.callback_url("twilio", "inbound"),
    )
    uvicorn.run(
        create_app(config),
        host=settings.simulator_host,
        port=port or settings.simulator_port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
    )


@app.command()
def routes() -> None:
    """Show the provider routes from NUDGE_ROUTES (or the local simulator's) and the callback URLs
    to enter in each provider's console."""
    from pydantic import ValidationError

    try:
        settings = get_settings()
        configured = settings.effective_routes
    except (ValidationError, ValueError) as exc:
        raise _fail(f"NUDGE_ROUTES is not valid: {exc}", 2) from None
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


# ----- talking to a running stack ---------------------------------------------------------------


def _parse_props(props: list[str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for prop in props:
        key, sep, value = prop.partition("=")
        if not sep or not key:
            raise _fail(f"--prop takes key=value, got {prop!r}", code=2)
        parsed[key] = value
    return parsed


@app.command()
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
        response = httpx.post(f"{_gateway(gateway_url)}/v1/events", json=body, timeout=30)
    except httpx.HTTPError as exc:
        raise _fail(
            f"cannot reach the gateway at {_gateway(gateway_url)} ({exc}); is `make run` up?"
        ) from exc
    if response.status_code >= 400:
        raise _fail(f"gateway refused the event ({response.status_code}): {response.text}", code=2)
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


@app.command()
def journeys(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    temporal: Annotated[
        str | None, typer.Option(help="Temporal address [default: NUDGE_TEMPORAL_ADDRESS].")
    ] = None,
) -> None:
    """List a customer's journeys with their status and current step (from Temporal)."""
    from nudge.models import JourneyResult, JourneyState, SentMessage
    from nudge.temporal import connect

    settings = get_settings()
    if temporal:
        settings = settings.model_copy(update={"temporal_address": temporal})

    async def fetch() -> list[tuple[Any, JourneyState | None, list[SentMessage]]]:
        client = await connect(settings)
        escaped = customer.replace("'", "\\'")
        found = []
        async for execution in client.list_workflows(f"NudgeCustomerId = '{escaped}'"):
            state, messages = None, []
            handle = client.get_workflow_handle(
                execution.id, run_id=execution.run_id, result_type=JourneyResult
            )
            try:
                if execution.status and execution.status.name == "RUNNING":
                    state = await STATE.ask(handle)
                    messages = state.messages
                elif execution.status and execution.status.name == "COMPLETED":
                    messages = (await handle.result()).messages
            except Exception:  # noqa: BLE001 - a journey without a worker still lists
                pass
            found.append((execution, state, messages))
        return found

    def describe(message: SentMessage) -> str:
        """``template: decision``, with the reason, the receipt status and the route."""
        text = f"{message.template}: {message.decision.value}"
        details = [d for d in (message.reason, message.status and message.status.value, message.route) if d]
        if message.clicked:
            details.append("clicked")
        return text + (f" ({', '.join(details)})" if details else "")

    try:
        found = asyncio.run(fetch())
    except RuntimeError as exc:
        raise _fail(f"cannot reach Temporal at {settings.temporal_address}: {exc}") from exc
    if not found:
        console.print(f"no journeys for customer {customer!r}")
        raise typer.Exit(0)
    table = Table("workflow id", "journey", "status", "step", "detail", "messages", "started")
    for execution, state, messages in found:
        attrs = execution.typed_search_attributes
        step = next((p.value for p in attrs if p.key.name == "NudgeStep"), "")
        table.add_row(
            execution.id,
            execution.workflow_type,
            execution.status.name.lower() if execution.status else "?",
            str(step),
            state.detail if state else "",
            "\n".join(describe(m) for m in messages) or "-",
            f"{execution.start_time:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@customers_app.command("import")
def import_customers(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV with a header row.")
    ],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Customers per request.")] = 500,
    gateway_url: GatewayOpt = None,
) -> None:
    """Import customers from a CSV file, with a progress bar.

    Columns: id, name, phone, lifecycle_stage, country, timezone (only id is required; other
    columns become attributes). Phone numbers are normalised to E.164; a batch with an invalid
    row is rejected whole, and the invalid rows are reported with their line numbers.

    Marketing consent: consent_source (where it was given), consent_text (the wording shown) and
    consent_at (ISO time). It is recorded only for customers with no consent on record yet.
    """
    with file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "id" not in reader.fieldnames:
            raise _fail(f"{file}: the header row must include an 'id' column", code=2)
        rows = []
        for line, raw in enumerate(reader, start=2):
            if not (raw.get("id") or "").strip():
                raise _fail(f"{file}:{line}: empty id", code=2)
            record = customer_record(raw)
            rows.append((line, record))
    url = f"{_gateway(gateway_url)}/v1/customers:batch"
    imported = 0
    with Progress(
        TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("import", total=len(rows))
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            try:
                response = httpx.post(url, json={"customers": [r for _, r in chunk]}, timeout=60)
            except httpx.HTTPError as exc:
                raise _fail(f"cannot reach the gateway at {url} ({exc})") from exc
            if response.status_code == 422:
                detail = response.json().get("detail")
                if isinstance(detail, dict) and "errors" in detail:
                    for error in detail["errors"]:
                        err.print(f"{file}:{chunk[error['index']][0]}: {error['id']}: {error['error']}")
                else:
                    err.print(json.dumps(detail, indent=2))
                raise _fail(f"{imported} imported; the batch with the rows above was rejected", code=2)
            response.raise_for_status()
            imported += len(chunk)
            progress.advance(task, len(chunk))
    console.print(f"imported {imported} customers")


# ----- consent ------------------------------------------------------------------------------


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
    at: Annotated[str | None, typer.Option(help="When it was given (ISO 8601) [default: now].")] = None,
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


for command in (pause, resume, pauses):
    app.command()(command)


app.add_typer(templates_app, name="templates")
app.add_typer(signatures_app, name="signatures")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(app())
