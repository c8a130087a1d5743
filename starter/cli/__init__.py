"""The ``nudge`` command line: run the stack, send events, inspect journeys, manage customers.

One module per command group; this one only assembles them into ``app``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from starter.cli.audiences import audiences_app
from starter.cli.broadcast import broadcast_app
from starter.cli.codec import codec_app
from starter.cli.consent import consent_app
from starter.cli.customers import customers_app
from starter.cli.db import db_app
from starter.cli.events import event
from starter.cli.experiments import experiments_app
from starter.cli.journeys import journeys
from starter.cli.keys import keys_app
from starter.cli.pauses import pause, pauses, resume
from starter.cli.registry import signatures_app, templates_app
from starter.cli.report import report
from starter.cli.routes import routes
from starter.cli.setup import setup
from starter.cli.stack import demo, gateway, simulator, up, worker

__all__ = ["app", "main"]

app = typer.Typer(
    name="nudge",
    help="Nudge: lifecycle SMS journeys as durable Temporal workflows.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"nudge {version('nudge')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("nudge (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    _show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Nudge: lifecycle SMS journeys as durable Temporal workflows."""


for command in (
    up,
    demo,
    setup,
    worker,
    gateway,
    simulator,
    routes,
    event,
    journeys,
    report,
    pause,
    resume,
    pauses,
):
    app.command()(command)
app.add_typer(db_app, name="db")
app.add_typer(customers_app, name="customers")
app.add_typer(audiences_app, name="audiences")
app.add_typer(consent_app, name="consent")
app.add_typer(templates_app, name="templates")
app.add_typer(signatures_app, name="signatures")
app.add_typer(keys_app, name="keys")
app.add_typer(experiments_app, name="experiments")
app.add_typer(codec_app, name="codec")
app.add_typer(broadcast_app, name="broadcast")


def main() -> None:
    """The ``nudge`` command: a bad setting is one clean line and exit 2, in every command. A
    command that talked to Temporal ends without the interpreter's teardown, which can abort
    (``nudge.temporal.exit_without_teardown``), even when it fails with an unexpected error."""
    try:
        _run()
    except SystemExit as exc:
        from nudge.temporal import exit_without_teardown

        if exc.code is None or isinstance(exc.code, int):  # a message instead: Python prints it
            exit_without_teardown(exc.code or 0)
        raise
    except BaseException as exc:
        from nudge.temporal import exit_without_teardown, tried_to_connect

        if not tried_to_connect():
            raise
        sys.excepthook(type(exc), exc, exc.__traceback__)  # as Python reports it, and exit 1
        exit_without_teardown(1)
        raise


def _run() -> None:
    from nudge.errors import ConfigurationError
    from starter.cli.common import err

    try:
        app(standalone_mode=True)
    except ConfigurationError as exc:
        err.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
        raise SystemExit(2) from None
