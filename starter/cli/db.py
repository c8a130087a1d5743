"""``nudge db upgrade|downgrade|current|revision``: the schema's migrations (``nudge.store.schema``)
on the database ``NUDGE_DATABASE_URL`` names (the state dir's SQLite file by default)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from nudge.logging import configure_logging
from starter.cli.common import console, fail, settings_now

T = TypeVar("T")
db_app = typer.Typer(
    help="The database schema: Alembic's migrations, run on NUDGE_DATABASE_URL.", no_args_is_help=True
)


def _on(action: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    from nudge.store import create_engine

    settings = settings_now()
    configure_logging(level="WARNING", json=settings.log_json)

    async def run() -> T:
        engine = create_engine(settings.sqlalchemy_url)
        try:
            return await action(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except SQLAlchemyError as exc:
        where = make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)
        raise fail(f"the database {where} failed: {exc}") from exc


def _moved(before: str | None, after: str | None) -> None:
    if before == after:
        console.print(f"already at [bold]{after or 'base'}[/]: nothing to do")
    else:
        console.print(f"[green]migrated[/] {before or 'base'} -> [bold]{after or 'base'}[/]")


@db_app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="The revision to reach.")] = "head",
) -> None:
    """Run the migrations up to REVISION (the latest by default). A database made before
    migrations is brought to the first revision as it stands, its rows kept."""
    from nudge.store.schema import upgrade as run

    _moved(*_on(lambda engine: run(engine, revision)))


@db_app.command(context_settings={"ignore_unknown_options": True})  # `-1` is a revision, not an option
def downgrade(
    revision: Annotated[str, typer.Argument(help="The revision to go back to: an id, -1, or base.")],
    yes: Annotated[bool, typer.Option("--yes", help="Downgrade to base (drop every table) unasked.")] = False,
) -> None:
    """Undo migrations down to REVISION. `base` drops every table, with every row: it asks first."""
    from nudge.store.schema import downgrade as run

    if revision == "base" and not yes and not typer.confirm("drop every table and every row in them?"):
        raise fail("nothing changed", code=1)
    _moved(*_on(lambda engine: run(engine, revision)))


@db_app.command()
def current() -> None:
    """The database's revision, and whether this Nudge can run on it (exit 2 if it cannot: the
    message names the command to run)."""
    from nudge.store.schema import check, head

    console.print(f"at [bold]{_on(check)}[/] (head {head()}): up to date")


@db_app.command()
def revision(
    message: Annotated[str, typer.Option("--message", "-m", help="Why: the migration's title.")],
) -> None:
    """Write a new migration from what the table models changed (for Nudge's developers): the
    database must be at head; check the file by eye before committing it."""
    from alembic import command

    from nudge.store.schema import check, config, head

    number = f"{int(head()) + 1:04d}"

    async def write(engine: AsyncEngine) -> None:
        await check(engine)
        async with engine.connect() as conn:
            await conn.run_sync(
                lambda sync: command.revision(config(sync), message=message, autogenerate=True, rev_id=number)
            )

    _on(write)
    console.print(f"[green]wrote[/] migration {number}; check it, then `nudge db upgrade`")
