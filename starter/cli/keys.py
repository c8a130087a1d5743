"""``nudge keys``: make, list and revoke API keys, on the database itself.

These commands need the database (``NUDGE_DATABASE_URL``), not a key: whoever can reach the store
can make the first admin key, and recover when every key is lost. The gateway's ``/v1/keys`` does
the same for an admin key's holder.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from nudge.apikeys import Scope
from nudge.errors import InvalidInput, NotFound
from nudge.logging import configure_logging
from nudge.store import create_engine, session_factory
from nudge.store.schema import check as check_schema
from starter.api.services.keys import ApiKeys
from starter.cli.common import console, err, fail, settings_now

keys_app = typer.Typer(help="Make, list and revoke API keys (on the database).", no_args_is_help=True)
T = TypeVar("T")


def _on_store(action: Callable[[ApiKeys], Awaitable[T]]) -> T:
    settings = settings_now()
    # Logs to stderr, warnings only: stdout holds nothing but the key `create` prints.
    configure_logging(level="WARNING", json=settings.log_json)

    async def run() -> T:
        engine = create_engine(settings.sqlalchemy_url)
        try:
            await check_schema(engine)
            return await action(ApiKeys(session_factory(engine), cache_ttl=settings.api_key_cache))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (InvalidInput, NotFound) as exc:
        raise fail(str(exc), code=2) from exc
    except (OSError, DBAPIError) as exc:
        raise fail(f"cannot open the database ({exc}); is NUDGE_DATABASE_URL right?") from exc


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@keys_app.command("create")
def create(
    name: Annotated[
        str, typer.Option("--name", help="Who holds it, e.g. checkout-service; audits record it.")
    ],
    scope: Annotated[
        list[Scope],
        typer.Option("--scope", help="What it may do (repeatable): events, read or admin (everything)."),
    ],
) -> None:
    """Make an API key and print it once: only its digest is kept.

    Example: [bold]nudge keys create --name checkout-service --scope events[/]
    """
    key, row = _on_store(lambda keys: keys.create(name, scope, by=_operator()))
    err.print(f"made key nk_{row.prefix} for {row.name!r} with scopes {', '.join(row.scopes)}")
    err.print("[yellow]copy it now: it is not shown again[/]")
    typer.echo(key)  # alone on stdout, for `export NUDGE_API_KEY=$(nudge keys create ...)`


@keys_app.command("list")
def list_keys(
    revoked: Annotated[bool, typer.Option("--revoked", help="Show revoked keys too.")] = False,
) -> None:
    """List the keys by prefix, name and scopes (never the keys themselves)."""
    rows = _on_store(lambda keys: keys.list(revoked=revoked))
    if not rows:
        console.print("no API keys; make one with [bold]nudge keys create --name NAME --scope admin[/]")
        return
    table = Table("prefix", "name", "scopes", "created", "by", "revoked")
    for row in rows:
        table.add_row(
            f"nk_{row.prefix}",
            row.name,
            ", ".join(row.scopes),
            row.created_at.strftime("%Y-%m-%d %H:%M"),
            row.created_by,
            row.revoked_at.strftime("%Y-%m-%d %H:%M") if row.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(
    prefix: Annotated[
        str, typer.Argument(help="The key's prefix (nk_1a2b3c4d, as `nudge keys list` shows it).")
    ],
) -> None:
    """Revoke a key: gateways refuse it within NUDGE_API_KEY_CACHE (at once through /v1/keys)."""
    row = _on_store(lambda keys: keys.revoke(prefix, by=_operator()))
    console.print(f"revoked nk_{row.prefix} ({row.name})")
