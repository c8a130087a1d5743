"""Alembic owns the schema (``nudge/store/migrations``); this is its one door.

- ``upgrade`` and ``downgrade`` run the migrations in one transaction on the engine's own
  connection. PostgreSQL takes an advisory lock first and SQLite's ``BEGIN IMMEDIATE`` holds the
  write lock, so two processes that upgrade at once run each migration once.
- ``check`` is what the worker and the gateway call at start: a database behind the code (or
  made before Alembic, or empty) is refused with ``SchemaBehind``, which names the command to
  run; one ahead of it (a newer Nudge migrated it) with ``SchemaAhead``.
- ``drift`` lists what differs between the table models and the database (``alembic check``):
  a test keeps it empty after ``upgrade``.

``nudge db upgrade|downgrade|current|revision`` (``starter/cli/db.py``) call these.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from nudge.errors import ConfigurationError

MIGRATIONS = Path(__file__).with_name("migrations")
LOCK = 0x6E75646765  # "nudge": the advisory lock key migrations hold on PostgreSQL
UPGRADE = "nudge db upgrade"


class SchemaBehind(ConfigurationError):
    """The database is not at the revision this code needs; ``nudge db upgrade`` brings it there."""

    def __init__(self, message: str, *, current: str | None, head: str) -> None:
        super().__init__(message)
        self.current = current
        self.head = head


class SchemaAhead(ConfigurationError):
    """The database is at a revision this code does not know: a newer Nudge migrated it."""

    def __init__(self, message: str, *, current: str, head: str) -> None:
        super().__init__(message)
        self.current = current
        self.head = head


def config(connection: Any = None) -> Config:
    """Alembic's configuration, in code (there is no ``alembic.ini``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The revision this code needs."""
    revision = scripts().get_current_head()
    assert revision is not None
    return revision


def where(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=True)


async def current(engine: AsyncEngine) -> str | None:
    """The database's revision; ``None`` before the first ``upgrade``."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def upgrade(engine: AsyncEngine, revision: str = "head") -> tuple[str | None, str | None]:
    """Run the migrations up to ``revision``; returns the revisions before and after."""
    return await _run(engine, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(engine: AsyncEngine, revision: str) -> tuple[str | None, str | None]:
    """Undo migrations down to ``revision`` (``base``: drop every table)."""
    return await _run(engine, lambda cfg: command.downgrade(cfg, revision))


async def _run(engine: AsyncEngine, step: Any) -> tuple[str | None, str | None]:
    def run(sync: Any) -> tuple[str | None, str | None]:
        if sync.dialect.name == "postgresql":
            sync.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOCK})")
        before = MigrationContext.configure(sync).get_current_revision()
        step(config(sync))
        return before, MigrationContext.configure(sync).get_current_revision()

    async with engine.begin() as conn:
        return await conn.run_sync(run)


async def check(engine: AsyncEngine) -> str:
    """Refuse a database that is not at this code's revision; returns the revision."""
    needed = head()
    async with engine.connect() as conn:
        found, tables = await conn.run_sync(
            lambda sync: (
                MigrationContext.configure(sync).get_current_revision(),
                inspect(sync).get_table_names(),
            )
        )
    if found == needed:
        return found
    if found is None:
        state = "was made before migrations" if "customer" in tables else "has no schema yet"
        raise SchemaBehind(
            f"the database {where(engine)} {state}: run `{UPGRADE}` (`make run` does it by itself)",
            current=None,
            head=needed,
        )
    known = {script.revision for script in scripts().walk_revisions()}
    if found not in known:
        raise SchemaAhead(
            f"the database {where(engine)} is at revision {found}, which this Nudge does not know "
            f"(it needs {needed}): a newer Nudge migrated it; run that version, or its "
            "`nudge db downgrade`",
            current=found,
            head=needed,
        )
    raise SchemaBehind(
        f"the database {where(engine)} is at revision {found}, this Nudge needs {needed}: run `{UPGRADE}`",
        current=found,
        head=needed,
    )


def include_object(dialect: str) -> Callable[..., bool]:
    """Alembic's filter for ``dialect``: leave out what that dialect never creates (an index for
    another one's, ``ddl_if(dialect="postgresql")``) and the version table."""

    def include(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        if kind == "table" and name == "alembic_version":
            return False
        if kind == "index" and not reflected:
            condition = getattr(obj, "_ddl_if", None)
            if condition is not None and condition.dialect not in (None, dialect):
                return False
        return True

    return include


async def require(url: str) -> str:
    """``check`` on a short-lived engine of its own: a process refuses to start (before it
    connects to anything else) on a database that is not at this code's revision."""
    from nudge.store.engine import create_engine

    engine = create_engine(url)
    try:
        return await check(engine)
    finally:
        await engine.dispose()


async def drift(engine: AsyncEngine) -> list[Any]:
    """What autogenerate would change: the table models against the database (empty when they
    agree)."""
    from sqlmodel import SQLModel

    def compare(sync: Any) -> list[Any]:
        context = MigrationContext.configure(
            sync, opts={"include_object": include_object(sync.dialect.name), "compare_type": True}
        )
        return list(compare_metadata(context, SQLModel.metadata))

    async with engine.connect() as conn:
        with warnings.catch_warnings():
            # SQLite cannot reflect expression indexes; they are PostgreSQL's only (``ddl_if``).
            warnings.filterwarnings("ignore", message="autogenerate skipping metadata-specified expression")
            return await conn.run_sync(compare)
