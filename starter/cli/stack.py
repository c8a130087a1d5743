"""``nudge up``, ``demo``, ``worker``, ``gateway`` and ``simulator``: run the stack, or one part of it."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nudge.logging import configure_logging
from nudge.settings import get_settings
from starter.cli.common import console, err, fail


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
    from starter.stack import Ports, Stack

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
    # SIGTERM (a service manager, `kill`) and SIGHUP (the terminal closed) stop the stack as
    # Ctrl-C does: no child is left running on its port.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        _serve(stack, demo=demo)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _serve(stack: Any, *, demo: bool) -> None:
    from starter.stack import StackError

    with console.status("starting Temporal, worker, gateway and simulator..."):
        try:
            stack.start()
        except StackError as exc:
            raise fail(str(exc)) from exc
        except KeyboardInterrupt:
            raise fail("interrupted while starting; every part was stopped", code=130) from None
    try:
        console.print(f"[green]stack is up[/]; logs in {stack.state_dir / 'logs'}")
        if demo:
            _play_demo(stack)
        _print_urls(stack)
        console.print("serving; press [bold]Ctrl-C[/] to stop")
        while all(proc.poll() is None for _, proc in stack.children):
            try:
                time.sleep(0.5)
            except KeyboardInterrupt:
                break
        else:
            dead = [name for name, proc in stack.children if proc.poll() is not None]
            err.print(f"[red]{', '.join(dead)} stopped unexpectedly[/]; see {stack.state_dir / 'logs'}")
    except KeyboardInterrupt:
        pass
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP):  # a second signal must not cut the stop short
            signal.signal(sig, signal.SIG_IGN)
        with console.status("stopping..."):
            stack.stop()
        console.print("stopped")


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
        raise fail(str(exc)) from exc
    finally:
        stack.stop()
        if keep:
            console.print(f"state kept in {state_dir}")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
    if not ok:
        raise fail("some journeys did not reach their expected end state")
    console.print("[green]demo passed[/]: every journey reached its expected end state")


def _play_demo(stack: Any) -> bool:
    from nudge.temporal import connect
    from starter.demo import run_demo, summary_table

    settings = stack.client_settings

    async def play() -> list[Any]:
        client = await connect(settings, wait=30)
        return await run_demo(
            gateway_url=stack.gateway_url,
            api_key=stack.api_key,
            simulator_url=stack.simulator_url,
            client=client,
            console=console,
        )

    rows = asyncio.run(play())
    console.print(summary_table(rows))
    return all(row.ok for row in rows)


def _print_urls(stack: Any) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("Temporal UI", stack.ui_url)
    table.add_row("Gateway", stack.gateway_url)
    table.add_row("Dashboard", f"{stack.gateway_url}/dashboard  (key: {stack.state_dir / 'admin.key'})")
    table.add_row("OpenAPI docs", f"{stack.gateway_url}/docs")
    table.add_row("Simulator ledger", f"{stack.simulator_url}/_sim/ledger")
    console.print(table)


def worker() -> None:
    """Run the worker (journeys and activities) until interrupted."""
    import worker as worker_module

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(worker_module.main())


def gateway(
    host: Annotated[str | None, typer.Option(help="Bind address \\[default: NUDGE_GATEWAY_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port \\[default: NUDGE_GATEWAY_PORT, 8000].")] = None,
) -> None:
    """Serve the HTTP gateway (events, webhooks, short links) with uvicorn."""
    import uvicorn

    import starter.api.app  # noqa: F401  (imported before the collector is tuned: frozen with the rest)
    from nudge.gc_tuning import tune_gc
    from nudge.store.schema import require

    settings = get_settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    asyncio.run(require(settings.sqlalchemy_url))  # a schema behind: one line, exit 2
    tune_gc()
    uvicorn.run(
        "starter.api.app:create_app",
        factory=True,
        host=host or settings.gateway_host,
        port=port or settings.gateway_port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
    )


def simulator(
    port: Annotated[int | None, typer.Option(help="Port \\[default: NUDGE_SIMULATOR_PORT, 8100].")] = None,
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
