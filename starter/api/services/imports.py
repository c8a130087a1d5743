"""Customer import jobs: open one, stage its rows chunk by chunk, then commit or abort it.

Why a job and not one big request: a million rows cannot be one HTTP request nor one SQLite
transaction (the worker must keep writing while they upload), and a batch at a time is not atomic
(an error or Ctrl-C halfway leaves half a file imported). So each chunk is checked (ids, consent,
phones to E.164) off the event loop, then staged in a short transaction of its own (a bulk insert;
``COPY`` on PostgreSQL), its invalid rows answered with their line and reason and never staged;
the commit merges the staged rows into ``customer``, and the consent given with them into
``consent`` and ``consent_event`` (first only, as ``upsert_customers`` records it), in one
set-based transaction (``nudge.store.imports.merge_staged``), then deletes them. Before the commit
``customer`` is untouched; an import aborted, or left open for ``ABANDONED_AFTER``, has its rows
deleted (the age check runs whenever an import is opened).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.errors import InvalidInput, NotFound
from nudge.logging import get_logger
from nudge.store import CustomerImport, CustomerImportRow, ImportStatus, read_sessions, utcnow
from nudge.store.imports import STAGED_COLUMNS, merge_staged
from starter.csv_customers import Checked, CsvLayout, Reject, check_chunk

log = get_logger(__name__)

ABANDONED_AFTER = timedelta(hours=1)
"""An open import with no chunk for this long is given up (its client died, or was killed)."""
KEPT_FOR = timedelta(days=7)
"""How long a finished import's record (its counts, for a commit retried) is kept."""


class UnknownImport(NotFound):
    """No import has this id (or it finished long ago)."""

    def __init__(self, import_id: str) -> None:
        super().__init__(f"unknown import {import_id!r}", kind="import", name=import_id)


class ImportClosed(InvalidInput):
    """The import's state does not allow the step (chunks after its commit, a commit after its abort)."""


class InvalidImport(InvalidInput):
    """The header or a chunk cannot be read (no ``id`` column, lines given twice)."""


@dataclass(frozen=True)
class Staged:
    """What one chunk did: how many rows were staged, and the rows rejected, with their reasons."""

    staged: int
    rejects: list[Reject]


_POOLS: dict[int, ProcessPoolExecutor] = {}
"""The processes that check rows, by size: started at the first import, kept for the next ones
until the gateway's lifespan ends (``shutdown_pools``). One set per process, as a process serves
one gateway app."""


def _pool(workers: int) -> ProcessPoolExecutor:
    """The pool of ``workers`` processes, started fresh (``spawn``): a fork of the gateway would
    copy its threads' locks (the Temporal client's, the database driver's) in whatever state."""
    if (pool := _POOLS.get(workers)) is None:
        pool = _POOLS[workers] = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    return pool


async def shutdown_pools() -> None:
    """Stop the checking processes (the gateway's lifespan, at its end): left running, they
    outlive the gateway as orphans."""
    pools = list(_POOLS.values())
    _POOLS.clear()
    for pool in pools:
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


class Imports:
    """The import jobs on one store; ``default_region`` reads national phone numbers, and
    ``workers`` processes check the rows (0: a thread)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, default_region: str, workers: int = 0
    ) -> None:
        self._sessions = sessions
        self._default_region = default_region
        self._workers = workers

    async def open(self, header: Sequence[str], *, actor: str | None = None) -> CustomerImport:
        """Start an import of rows with these columns (abandoned ones are discarded first).

        Raises:
            InvalidImport: the header has no ``id`` column, or names a column twice.
        """
        try:
            CsvLayout(header)
        except ValueError as exc:
            raise InvalidImport(str(exc)) from exc
        await self.discard_abandoned()
        job = CustomerImport(id=f"imp_{uuid.uuid4().hex}", header=list(header), actor=actor)
        async with self._sessions() as session:
            session.add(job)
            await session.commit()
        log.info("customer_import_opened", import_id=job.id, columns=len(header))
        return job

    async def read(self, import_id: str) -> CustomerImport:
        """The import's state and counts.

        Raises:
            UnknownImport: no such import.
        """
        async with read_sessions(self._sessions)() as session:
            job = await session.get(CustomerImport, import_id)
        if job is None:
            raise UnknownImport(import_id)
        return job

    async def stage(
        self, import_id: str, lines: Sequence[int], rows: Sequence[Sequence[str | None]]
    ) -> Staged:
        """Check a chunk of rows and stage the valid ones, in one short transaction.

        Raises:
            UnknownImport: no such import.
            ImportClosed: it was committed, aborted or given up.
            InvalidImport: a line of the chunk was staged before.
        """
        job = await self.read(import_id)
        if job.status != ImportStatus.OPEN:
            raise ImportClosed(f"import {import_id} is {job.status}: it takes no more rows")
        checked = await self._check(job.header, lines, rows)
        now = utcnow()
        async with self._sessions() as session:
            touched = await session.exec(
                update(CustomerImport)
                .where(col(CustomerImport.id) == import_id, col(CustomerImport.status) == ImportStatus.OPEN)
                .values(
                    staged=col(CustomerImport.staged) + len(checked.staged),
                    rejected=col(CustomerImport.rejected) + len(checked.rejects),
                    updated_at=now,
                )
            )
            if touched.rowcount == 0:  # committed or aborted while this chunk was checked
                raise ImportClosed(f"import {import_id} is no longer open: it takes no more rows")
            connection = await session.connection()
            try:
                await _insert(connection, import_id, checked.staged)
            except (IntegrityError, psycopg.IntegrityError) as exc:  # COPY goes around SQLAlchemy
                raise InvalidImport(
                    f"some lines of this chunk (from {min(lines)}) were staged before"
                ) from exc
            await session.commit()
        return Staged(staged=len(checked.staged), rejects=checked.rejects)

    async def _check(
        self, header: list[str], lines: Sequence[int], rows: Sequence[Sequence[str | None]]
    ) -> Checked:
        """The chunk's check, off the event loop: it is CPU-bound (phone numbers, about 60 µs
        each), so in the loop it would stall every other request for the chunk's length. In
        ``workers`` processes the import also runs on more than one core; with none, a thread
        keeps the loop answering but shares its core."""
        if self._workers == 0:
            return await asyncio.to_thread(check_chunk, header, lines, rows, self._default_region)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                _pool(self._workers), check_chunk, header, lines, rows, self._default_region
            )
        except BrokenProcessPool:
            _POOLS.pop(self._workers, None)  # a worker died (killed, out of memory): a new pool next time
            raise

    async def commit(self, import_id: str) -> CustomerImport:
        """Merge the staged rows into ``customer`` and the consent given with them, in one
        transaction, and delete them. A commit retried after it succeeded answers the same.

        Raises:
            UnknownImport: no such import.
            ImportClosed: it was aborted or given up: nothing was imported.
        """
        async with self._sessions() as session:
            job = await _locked(session, import_id)
            if job.status == ImportStatus.COMMITTED:
                return job
            if job.status != ImportStatus.OPEN:
                raise ImportClosed(f"import {import_id} was {job.status}: nothing was imported")
            merged = await merge_staged(session, import_id, actor=job.actor, now=utcnow())
            for customer_id, erased_at in merged.restored:
                log.warning(
                    "erased_customer_profile_restored", customer_id=customer_id, erased_at=str(erased_at)
                )
            await session.exec(delete(CustomerImportRow).where(col(CustomerImportRow.import_id) == import_id))
            job.status, job.finished_at = ImportStatus.COMMITTED.value, utcnow()
            job.created, job.updated, job.consents = merged.created, merged.updated, merged.consents
            session.add(job)
            await session.commit()
        log.info(
            "customer_import_committed",
            import_id=import_id,
            created=merged.created,
            updated=merged.updated,
            consents=merged.consents,
            rejected=job.rejected,
        )
        return job

    async def abort(self, import_id: str) -> CustomerImport:
        """Give the import up: delete its staged rows; nothing is imported. Idempotent.

        Raises:
            UnknownImport: no such import.
            ImportClosed: it was committed already.
        """
        async with self._sessions() as session:
            job = await _locked(session, import_id)
            if job.status == ImportStatus.COMMITTED:
                raise ImportClosed(f"import {import_id} was committed: its rows are imported")
            if job.status == ImportStatus.OPEN:
                await _finish(session, job, ImportStatus.ABORTED)
            await session.commit()
        log.info("customer_import_aborted", import_id=import_id, staged=job.staged)
        return job

    async def discard_abandoned(self, *, now: datetime | None = None) -> int:
        """Give up the imports open with no chunk for ``ABANDONED_AFTER`` (their rows deleted), and
        forget finished ones older than ``KEPT_FOR``. Returns how many were given up."""
        now = now or utcnow()
        async with read_sessions(self._sessions)() as session:
            stale = (
                await session.exec(
                    select(CustomerImport.id).where(
                        col(CustomerImport.status) == ImportStatus.OPEN,
                        col(CustomerImport.updated_at) < now - ABANDONED_AFTER,
                    )
                )
            ).all()
        for import_id in stale:
            async with self._sessions() as session:
                job = await _locked(session, import_id)
                if job.status == ImportStatus.OPEN and job.updated_at < now - ABANDONED_AFTER:
                    await _finish(session, job, ImportStatus.EXPIRED)
                    log.warning("customer_import_expired", import_id=import_id, staged=job.staged)
                await session.commit()
        async with self._sessions() as session:
            await session.exec(
                delete(CustomerImport).where(
                    col(CustomerImport.status) != ImportStatus.OPEN,
                    col(CustomerImport.finished_at) < now - KEPT_FOR,
                )
            )
            await session.commit()
        return len(stale)


async def _locked(session: AsyncSession, import_id: str) -> CustomerImport:
    """The import, locked for this transaction (PostgreSQL; SQLite's writer holds the lock)."""
    query = select(CustomerImport).where(col(CustomerImport.id) == import_id).with_for_update()
    job = (await session.exec(query)).first()
    if job is None:
        raise UnknownImport(import_id)
    return job


async def _finish(session: AsyncSession, job: CustomerImport, status: ImportStatus) -> None:
    """Close an open import without importing it: its staged rows deleted."""
    await session.exec(delete(CustomerImportRow).where(col(CustomerImportRow.import_id) == job.id))
    job.status, job.finished_at = status.value, utcnow()
    session.add(job)


async def _insert(connection: AsyncConnection, import_id: str, rows: list[tuple[object, ...]]) -> None:
    """Stage the rows in bulk: ``COPY`` on PostgreSQL, one ``executemany`` elsewhere."""
    if not rows:
        return
    names = ", ".join(f'"{name}"' for name in STAGED_COLUMNS)
    if connection.dialect.name == "postgresql":
        raw = await connection.get_raw_connection()
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        async with cursor, cursor.copy(f"COPY customer_import_row ({names}) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row((import_id, *row))
        return
    # The driver's own parameters, so each value must be what SQLAlchemy would bind for it.
    to_time = CustomerImportRow.__table__.c.consent_at.type.bind_processor(connection.dialect)  # type: ignore[attr-defined]
    assert STAGED_COLUMNS[-1] == "consent_at"  # the one column whose value needs converting
    params = [
        (import_id, *row) if row[-1] is None or to_time is None else (import_id, *row[:-1], to_time(row[-1]))
        for row in rows
    ]
    marks = ", ".join("?" for _ in STAGED_COLUMNS)
    await connection.exec_driver_sql(f"INSERT INTO customer_import_row ({names}) VALUES ({marks})", params)
