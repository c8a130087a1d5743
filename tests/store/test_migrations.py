"""Alembic owns the schema. A database that main made before it (``fixtures/main-6a17001.*.sql``:
6a17001's ``create_all`` and a few rows, dumped by SQLite's ``iterdump`` and ``pg_dump``, so the
oracle is that code's own output, not the migration's) upgrades with every row kept; the table
models and the migrations agree; a database behind (or ahead of) the code is refused at start."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from nudge.store import Customer, EventRecord, create_engine, init_db, session_factory
from nudge.store.schema import SchemaAhead, SchemaBehind, check, current, downgrade, drift, head, upgrade

FIXTURES = Path(__file__).with_name("fixtures")
ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 3, 1, 9, 30, 15, 250_000, tzinfo=UTC)


async def load_main_6a17001(engine: AsyncEngine) -> None:
    text = (FIXTURES / f"main-6a17001.{engine.dialect.name}.sql").read_text()
    statements = [s.strip() for s in text.split(";\n")]
    async with engine.begin() as conn:
        for statement in statements:
            if statement and statement not in ("BEGIN TRANSACTION", "COMMIT"):
                await conn.exec_driver_sql(statement)


async def every_row(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows, by the database's own reflection (not the models)."""

    def read(conn: Any) -> dict[str, list[dict[str, Any]]]:
        meta = MetaData()
        meta.reflect(conn)
        return {
            name: sorted((dict(row._mapping) for row in conn.execute(select(table))), key=repr)
            for name, table in meta.tables.items()
            if name != "alembic_version"
        }

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def before_alembic(engine: AsyncEngine) -> None:
    """A database as ``create_all`` made it just before Alembic: 0001's schema, no version table."""
    await upgrade(engine, "0001")


async def forget_alembic(engine: AsyncEngine) -> None:
    """Make it look as one made before Alembic: no version table."""
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE alembic_version")


@pytest.fixture
async def bare(db_url: str) -> Any:
    """An engine on an empty database (no ``init_db``)."""
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


async def test_a_database_made_by_main_before_alembic_upgrades_with_every_row_kept(
    bare: AsyncEngine,
) -> None:
    """6a17001's database is refused until upgraded; the upgrade keeps each row of each table as
    it was, leaves nothing for autogenerate to do, and the models read the rows back."""
    await load_main_6a17001(bare)
    before = await every_row(bare)
    assert sum(map(len, before.values())) == 13
    with pytest.raises(SchemaBehind, match=r"was made before migrations: run `nudge db upgrade`"):
        await check(bare)

    assert await upgrade(bare) == (None, head())

    after = await every_row(bare)
    assert {name: after[name] for name in before} == before
    assert all(after[name] == [] for name in set(after) - set(before))  # tables later revisions add
    assert await drift(bare) == []
    assert await check(bare) == head()
    async with session_factory(bare)() as session:
        customer = await session.get(Customer, "c1")
    assert customer is not None
    assert (customer.phone, customer.attributes["tags"]) == ("+8613800138000", ["vip"])
    assert customer.last_active_at == datetime(2026, 12, 1, 8, 15, 30, 125_000, tzinfo=UTC)


async def test_the_models_and_the_migrations_agree(bare: AsyncEngine) -> None:
    """Autogenerate finds nothing to do on a database the migrations made: a model changed
    without its migration fails here (on SQLite and on PostgreSQL)."""
    await upgrade(bare)
    assert await drift(bare) == []


async def test_downgrade_to_base_drops_every_table_and_upgrade_makes_them_again(bare: AsyncEngine) -> None:
    await upgrade(bare)
    assert await downgrade(bare, "base") == (head(), None)
    async with bare.connect() as conn:
        left = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert left <= {"alembic_version"}
    assert await current(bare) is None
    assert await upgrade(bare) == (None, head())
    assert await drift(bare) == []


async def test_a_database_with_no_schema_or_an_unknown_revision_is_refused(bare: AsyncEngine) -> None:
    with pytest.raises(SchemaBehind, match=r"has no schema yet: run `nudge db upgrade`") as behind:
        await check(bare)
    assert (behind.value.current, behind.value.head) == (None, head())
    await upgrade(bare)
    async with bare.begin() as conn:
        await conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaAhead, match=r"at revision 9999, which this Nudge does not know"):
        await check(bare)


async def test_two_processes_upgrading_at_once_migrate_once(db_url: str) -> None:
    """The gateway's and the worker's `nudge db upgrade` at the same moment: the lock makes one
    wait for the other, which then finds nothing to do."""
    engines = [create_engine(db_url) for _ in range(2)]
    try:
        results = await asyncio.gather(*(upgrade(engine) for engine in engines))
        assert sorted(results, key=repr) == sorted([(None, head()), (head(), head())], key=repr)
        assert await drift(engines[0]) == []
    finally:
        for engine in engines:
            await engine.dispose()


async def test_an_older_database_gets_the_columns_and_indexes_added_since(bare: AsyncEngine) -> None:
    """A database made before a column and an index were added (and before Alembic) gets both."""
    await before_alembic(bare)
    async with bare.begin() as conn:
        await conn.exec_driver_sql('DROP INDEX "ix_message_template_created_at"')
        await conn.exec_driver_sql('ALTER TABLE "message" DROP COLUMN "cap_reserved_at"')
    await forget_alembic(bare)
    await init_db(bare)
    assert await drift(bare) == []


async def test_last_active_at_is_filled_from_the_events_when_added(bare: AsyncEngine) -> None:
    """A database made before ``customer.last_active_at`` gets it filled with each customer's
    latest event, whatever order the events were stored in; a customer with none keeps NULL."""
    events = {
        "c1": [DAY, DAY + timedelta(days=3), DAY - timedelta(days=40)],
        "c2": [DAY - timedelta(hours=2)],
    }
    await before_alembic(bare)
    async with session_factory(bare)() as session:
        session.add_all(Customer(id=cid) for cid in ("c1", "c2", "c3"))
        for cid, times in events.items():
            session.add_all(
                EventRecord(event_id=f"{cid}-{n}", customer_id=cid, name="x", occurred_at=at)
                for n, at in enumerate(times)
            )
        await session.commit()
    async with bare.begin() as conn:
        await conn.exec_driver_sql('ALTER TABLE "customer" DROP COLUMN "last_active_at"')
    await forget_alembic(bare)
    await init_db(bare)
    async with session_factory(bare)() as session:
        found = {cid: (await session.get(Customer, cid)) for cid in ("c1", "c2", "c3")}
    assert {cid: c.last_active_at if c else "gone" for cid, c in found.items()} == {
        "c1": DAY + timedelta(days=3),
        "c2": DAY - timedelta(hours=2),
        "c3": None,
    }


async def test_an_outbox_from_before_parking_is_brought_up_to_date(bare: AsyncEngine) -> None:
    """An outbox created before the refusal count, parking and the number's hash gets the columns
    and the indexes, and loses the due index the live one replaced."""
    await before_alembic(bare)
    async with bare.begin() as conn:
        for index in ("ix_stream_event_live", "ix_stream_event_phone_hash", "ix_stream_event_customer_id"):
            await conn.exec_driver_sql(f'DROP INDEX "{index}"')
        for column in ("refusals", "parked_at", "phone_hash"):
            await conn.exec_driver_sql(f'ALTER TABLE stream_event DROP COLUMN "{column}"')
        await conn.exec_driver_sql(
            "CREATE INDEX ix_stream_event_due ON stream_event (sink, next_attempt_at, id) "
            "WHERE delivered_at IS NULL"
        )
    await forget_alembic(bare)
    await init_db(bare)
    async with bare.connect() as conn:
        indexes = await conn.run_sync(lambda c: {ix["name"] for ix in inspect(c).get_indexes("stream_event")})
    assert "ix_stream_event_due" not in indexes
    assert await drift(bare) == []


def nudge(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    env.update(NUDGE_STATE_DIR=str(state_dir), NUDGE_TEMPORAL_ADDRESS="127.0.0.1:1", COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_worker_and_the_gateway_refuse_a_schema_behind_until_nudge_db_upgrade(tmp_path: Path) -> None:
    """On a fresh state dir, the worker and the gateway exit 2 with the command to run, before
    they try Temporal (whose address here answers nothing); `nudge db upgrade` migrates once and
    then has nothing to do, and `nudge db current` says so."""
    for command in (["worker"], ["gateway"], ["db", "current"]):
        refused = nudge(tmp_path, *command)
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert "has no schema yet: run `nudge db upgrade`" in " ".join(refused.stderr.split()), command
    first = nudge(tmp_path, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert f"migrated base -> {head()}" in first.stdout
    again = nudge(tmp_path, "db", "upgrade")
    assert (again.returncode, "nothing to do" in again.stdout) == (0, True)
    now = nudge(tmp_path, "db", "current")
    assert (now.returncode, f"at {head()}" in now.stdout) == (0, True), now.stderr
    back = nudge(tmp_path, "db", "downgrade", "-1")
    assert back.returncode == 0 and f"-> {int(head()) - 1:04d}" in back.stdout, back.stderr
    behind = nudge(tmp_path, "db", "current")
    assert behind.returncode == 2
    assert f"this Nudge needs {head()}: run `nudge db upgrade`" in " ".join(behind.stderr.split())
