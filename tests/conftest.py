"""Fixtures shared by every test package: the Temporal test server, the store, the carrier
simulator and the HTTP client the worker would use (with faults a test can arm)."""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from nudge.codec import new_key
from nudge.store import create_engine, init_db
from simulator.app import SimConfig, create_app
from starter.testing import time_skipping_environment
from tests.faults import CLIENT_TIMEOUT_S, FaultyTransport
from tests.servers import serve

# The CLI sizes its tables to the terminal: one width for every run, whether its output is a
# terminal, a pipe or an xdist worker's.
os.environ["COLUMNS"] = "160"

POSTGRES_URL = os.environ.get("NUDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def codec_keys() -> str:
    """The codec key the test server's client seals payloads with (``NUDGE_CODEC_KEYS`` form)."""
    return new_key("test-1")


@pytest.fixture(scope="module")
async def env(codec_keys: str) -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping Temporal test server for each test module (half a second to start); its
    payloads sealed.

    Not one for the whole run: under pytest-xdist one process runs dozens of modules on it, the
    workflows their tests leave behind pile up (sleeping journeys, broadcasts), and twice in CI
    the long-lived server stopped answering mid-run (``h2 protocol error``, then ``Timeout
    expired`` on every time skip), failing whichever module came next on that process.
    """
    async with time_skipping_environment(codec_keys=codec_keys) as environment:
        yield environment


def _libpq_conninfo(url: str) -> str:
    """The SQLAlchemy URL as a plain libpq URL, for psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def running_in_ci(environ: Mapping[str, str]) -> bool:
    """Is ``CI`` set (as CI services do), to anything but empty, ``0`` or ``false``?"""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false")


@functools.cache
def _postgres_unreachable() -> str | None:
    """None if PostgreSQL answers at ``NUDGE_TEST_POSTGRES_URL``, else why not (asked once)."""
    try:
        psycopg.connect(_libpq_conninfo(POSTGRES_URL), connect_timeout=3).close()
    except psycopg.Error as exc:
        shown = make_url(POSTGRES_URL).render_as_string(hide_password=True)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL not reachable at {shown} ({first_line})"
    return None


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected what will not run
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In CI, a PostgreSQL that does not answer ends the run before any test, with the reason.

    Outside CI its tests skip with the reason; in CI a skip would leave the run green with the
    PostgreSQL half of the store untested.
    """
    if not running_in_ci(os.environ) or not any(item.get_closest_marker("postgres") for item in items):
        return
    if (reason := _postgres_unreachable()) is not None:
        pytest.exit(
            f"{reason}; CI is set, so the PostgreSQL tests may not skip",
            returncode=pytest.ExitCode.TESTS_FAILED,
        )


@pytest.fixture(scope="session")
def postgres_unreachable() -> str | None:
    """None if PostgreSQL answers at ``NUDGE_TEST_POSTGRES_URL``, else why not (asked once)."""
    return _postgres_unreachable()


@contextlib.asynccontextmanager
async def _fresh_postgres_schema() -> AsyncIterator[str]:
    """A URL whose connections see only a fresh, empty schema, dropped afterwards.

    CI has a single database, so each test gets its own schema (through ``search_path``) instead
    of its own database; test runs side by side never see each other's tables.
    """
    schema = f"nudge_test_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(_libpq_conninfo(POSTGRES_URL), autocommit=True) as conn:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    url = (
        make_url(POSTGRES_URL)
        .set(drivername="postgresql+psycopg")
        .update_query_dict({"options": f"-csearch_path={schema}"})
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        async with await psycopg.AsyncConnection.connect(
            _libpq_conninfo(POSTGRES_URL), autocommit=True
        ) as conn:
            await conn.execute("SET lock_timeout = '10s'")
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _sqlite_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder / 'nudge.db'}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for this test."""
    return _sqlite_url(tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_unreachable: str | None
) -> AsyncIterator[str]:
    """An empty database: SQLite always, PostgreSQL when ``NUDGE_TEST_POSTGRES_URL`` answers."""
    if request.param == "sqlite":
        yield _sqlite_url(tmp_path)
        return
    if postgres_unreachable is not None:
        pytest.skip(postgres_unreachable)
    async with _fresh_postgres_schema() as url:
        yield url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on ``db_url`` with Nudge's tables created."""
    engine = create_engine(db_url)
    await init_db(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def carrier_config() -> SimConfig:
    """How the carrier simulator behaves: no latency, receipts held back past the test's end.
    A module overrides this fixture for another behaviour (latency, faults)."""
    return SimConfig(latency_ms=0, receipt_delay_ms=600_000)


@pytest.fixture
async def carrier(carrier_config: SimConfig) -> AsyncIterator[str]:
    """The real carrier simulator (every provider's wire format) on a free loopback port: its URL."""
    async with serve(create_app(carrier_config)) as url:
        yield url


@pytest.fixture
def transport() -> FaultyTransport:
    """The production transport, unarmed; a test arms a fault on it (``tests/faults.py``)."""
    return FaultyTransport()


@pytest.fixture
async def http(transport: FaultyTransport) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client as the worker's, over ``transport``."""
    async with httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(CLIENT_TIMEOUT_S), trust_env=False
    ) as client:
        yield client
