"""The async engine (SQLite by default, PostgreSQL in production), its sessions, and creating
the schema with a small forward-only migration.

``init_db`` creates every table in ``SQLModel.metadata``: importing this module imports the
``nudge.store`` package first, and with it every table module.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.store.stream import OBSOLETE_INDEXES

BACKFILLS = {
    ("customer", "last_active_at"): (
        "UPDATE customer SET last_active_at ="
        " (SELECT max(event.occurred_at) FROM event WHERE event.customer_id = customer.id)"
    ),
}
"""What a column added later holds on the rows stored before it: filled once, as it is added."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the gateway and the worker write the same file; busy_timeout waits for the lock.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # The driver's own deferred BEGIN is off; ``_begin`` starts each transaction instead.
    dbapi_connection.isolation_level = None


def _begin(conn: Any) -> None:
    """Start SQLite transactions ourselves: writers take the write lock up front; readers none.

    A deferred transaction that reads and then writes must upgrade its lock, and when another
    process wrote in between, SQLite fails the upgrade at once with "database is locked",
    busy_timeout or not. Under load (events and receipts in the gateway, sends in the worker) that
    turned into 500s. ``BEGIN IMMEDIATE`` makes every writer wait its turn instead. Sessions from
    ``read_sessions`` run their SELECTs in autocommit mode: they hold no lock and no snapshot.
    """
    if not conn.get_execution_options().get("nudge_read_only"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str) -> AsyncEngine:
    """Create the async engine; SQLite gets WAL and a busy timeout, and its folder is made."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        sync_engine: Engine = engine.sync_engine
        event.listen(sync_engine, "connect", _sqlite_pragmas)
        event.listen(sync_engine, "begin", _begin)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


async def init_db(engine: AsyncEngine, *, attempts: int = 5) -> None:
    """Create the tables that do not exist yet, and add nullable columns added since.

    The gateway and the worker start together on a fresh database; when the other process
    creates a table between our check and our CREATE, we lose the race and simply check again.
    """
    for attempt in range(1, attempts + 1):
        try:
            async with engine.begin() as conn:
                await conn.run_sync(SQLModel.metadata.create_all)
                await conn.run_sync(_add_missing_columns)
            return
        except DBAPIError as exc:
            lost_race = "already exists" in str(exc) or "duplicate" in str(exc).lower()
            if not lost_race or attempt == attempts:
                raise
            await asyncio.sleep(0.2 * attempt)


def _add_missing_columns(conn: Any) -> None:
    """A small forward-only migration: columns added to a model later are nullable, so
    ``ALTER TABLE ... ADD COLUMN`` brings an existing database up to date (and ``BACKFILLS``
    fills the ones derived from other tables); indexes added later
    (on new or old columns) are created too, and indexes a new one replaced dropped."""
    inspector = inspect(conn)
    for table in SQLModel.metadata.sorted_tables:
        existing = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in existing and column.nullable:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
                if (table.name, column.name) in BACKFILLS:
                    conn.exec_driver_sql(BACKFILLS[table.name, column.name])
        indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        for name in indexes & set(OBSOLETE_INDEXES):
            conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{name}"')
        for index in table.indexes:
            if index.name not in indexes:
                index.create(conn)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that may write (on SQLite each one holds the write lock from its start)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def read_sessions(sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Read-only sessions on the same engine: on SQLite they take no lock at all."""
    engine: AsyncEngine = sessions.kw["bind"]
    return async_sessionmaker(
        engine.execution_options(nudge_read_only=True), class_=AsyncSession, expire_on_commit=False
    )
