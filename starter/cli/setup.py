"""``nudge setup``: what a new deployment needs once, and what is safe to run again on every deploy
(the compose file's one-shot ``setup`` service runs it before the worker and the gateway)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from nudge.logging import configure_logging
from nudge.settings import Settings
from starter.cli.common import console, err, fail, settings_now

SETUP_KEY_NAME = "admin"


def setup(
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="Write the first admin key to this file (mode 600) instead of printing it.",
        ),
    ] = None,
    temporal_wait: Annotated[
        float, typer.Option(help="Seconds to keep trying Temporal while it starts.")
    ] = 60.0,
) -> None:
    """Migrate the database, register the search attributes in Temporal's namespace, and make a
    first admin key: each only when it is not done yet, so it is safe on every deploy.

    Works against the dev server, a self-hosted cluster (NUDGE_TEMPORAL_TLS_CERT, _KEY, _CA) and
    Temporal Cloud (NUDGE_TEMPORAL_API_KEY, or a client certificate); see the README's "Temporal
    beyond the dev server".
    """
    settings = settings_now()
    configure_logging(level="WARNING", json=settings.log_json)
    try:
        made = asyncio.run(_setup(settings, temporal_wait))
    except RuntimeError as exc:  # the SDK's connection errors
        raise fail(f"cannot reach Temporal at {settings.temporal_address}: {exc}") from exc
    if made is None:
        console.print("admin key: one exists already; none made ([bold]nudge keys list[/])")
        return
    if key_file is not None:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.touch(mode=0o600)
        key_file.chmod(0o600)  # an existing file keeps its mode otherwise
        key_file.write_text(made + "\n")
        console.print(f"admin key: made, written to {key_file}")
        return
    err.print("[yellow]the first admin key, shown once: copy it now[/]")
    typer.echo(made)


async def _setup(settings: Settings, temporal_wait: float) -> str | None:
    from nudge.apikeys import Scope
    from nudge.store import create_engine, session_factory
    from nudge.store.schema import upgrade
    from nudge.temporal import connect, ensure_search_attributes
    from starter.api.services.keys import ApiKeys

    engine = create_engine(settings.sqlalchemy_url)
    try:
        before, after = await upgrade(engine)
        console.print(
            f"database: migrated {before or 'base'} -> {after}"
            if before != after
            else f"database: at {after}"
        )
        client = await connect(settings, wait=temporal_wait)
        added = await ensure_search_attributes(client)
        console.print(
            f"temporal: namespace {settings.temporal_namespace!r} at {settings.temporal_address}: "
            + (f"registered {', '.join(added)}" if added else "search attributes already registered")
        )
        keys = ApiKeys(session_factory(engine), cache_ttl=settings.api_key_cache)
        if any(Scope.ADMIN.value in row.scopes for row in await keys.list()):
            return None
        key, _row = await keys.create(SETUP_KEY_NAME, [Scope.ADMIN], by="nudge setup")
        return key
    finally:
        await engine.dispose()
