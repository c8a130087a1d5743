"""The async engine (SQLite by default, PostgreSQL in production) and its sessions.

The schema is Alembic's (``nudge.store.schema``); ``init_db`` upgrades a database to the latest
revision, for the tests, the benchmarks and the local stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


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


async def init_db(engine: AsyncEngine) -> None:
    """Upgrade the database to the latest revision (``nudge db upgrade``). The worker and the
    gateway never do this themselves: they refuse a database that is behind."""
    from nudge.store.schema import upgrade

    await upgrade(engine)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that may write (on SQLite each one holds the write lock from its start)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def read_sessions(sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Read-only sessions on the same engine: on SQLite they take no lock at all."""
    engine: AsyncEngine = sessions.kw["bind"]
    return async_sessionmaker(
        engine.execution_options(nudge_read_only=True), class_=AsyncSession, expire_on_commit=False
    )
