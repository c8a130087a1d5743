"""Customer imports: the job (``CustomerImport``) and the rows staged for it (``CustomerImportRow``).

A CSV import is uploaded in chunks into ``customer_import_row``, each chunk a short transaction of
its own, and merged into ``customer`` (and the consent given with it) by one set-based transaction
at commit, which then deletes the import's rows. Staging is what makes a large import atomic
without holding SQLite's one write lock for minutes: ``customer`` changes only at the commit, so an
import abandoned before it (Ctrl-C, an error, a killed client) leaves profiles as they were, and
its staged rows are deleted by the abort or, later, by age.

The staged rows hold what the gateway checked and normalised (the phone already in E.164), so the
merge is plain SQL. The rows a check refused are never staged: they are answered to the client
with their reasons, and only counted here (``rejected``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, String, bindparam, text
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.store.columns import UTCDateTime, optional_timestamp, timestamp


class ImportStatus(StrEnum):
    OPEN = "open"
    """Taking chunks; nothing is in ``customer`` yet."""
    COMMITTED = "committed"
    """Merged into ``customer``; its staged rows deleted."""
    ABORTED = "aborted"
    """Given up by its client; its staged rows deleted, nothing imported."""
    EXPIRED = "expired"
    """Left open too long (an abandoned client); its staged rows deleted, nothing imported."""


class CustomerImportBase(SQLModel):
    header: list[str] = Field(sa_type=JSON)
    """The CSV's column names, in order: each staged row's values are read against them."""
    actor: str | None = Field(default=None, max_length=200)
    """Who imports (``nudge customers import``), for the audit of the consent it records."""


class CustomerImport(CustomerImportBase, table=True):
    """One import: its state, its counts, and what its commit did."""

    __tablename__ = "customer_import"
    id: str = Field(primary_key=True, max_length=40)
    status: str = Field(default=ImportStatus.OPEN.value, max_length=20)
    staged: int = 0
    """Rows staged so far (valid ones; a customer id given on several lines counts each line)."""
    rejected: int = 0
    """Rows refused so far (the client got each one's reason)."""
    created_at: datetime = timestamp(nullable=False)
    updated_at: datetime = timestamp(nullable=False)
    """The last chunk's time: an open import idle for long is abandoned."""
    finished_at: datetime | None = optional_timestamp()
    created: int | None = None
    """At commit: customers that did not exist before."""
    updated: int | None = None
    """At commit: customers that existed and were replaced (erased ones among them restored)."""
    consents: int | None = None
    """At commit: consents recorded (for customers with none on record before)."""


class CustomerImportRow(SQLModel, table=True):
    """One valid CSV row of an open import, as it will be stored: the phone in E.164, the consent
    given with it, the CSV line it came from (the last line of an id wins, as in a sequential
    upsert)."""

    __tablename__ = "customer_import_row"
    import_id: str = Field(primary_key=True, max_length=40)
    line: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    customer_id: str = Field(max_length=200)
    name: str | None = None
    phone: str | None = None
    lifecycle_stage: str = "new"
    country: str | None = None
    timezone: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=True)
    consent_source: str | None = Field(default=None, max_length=200)
    """Set when the row gives a consent; recorded at commit if the customer has none on record."""
    consent_text: str | None = None
    consent_at: datetime | None = optional_timestamp()


STAGED_COLUMNS = (
    "import_id",
    "line",
    "customer_id",
    "name",
    "phone",
    "lifecycle_stage",
    "country",
    "timezone",
    "attributes",
    "consent_source",
    "consent_text",
    "consent_at",
)
"""The staged row's columns in the order the bulk insert (and COPY) writes them."""


@dataclass(frozen=True)
class Merged:
    """What a commit did to ``customer`` and ``consent``."""

    created: int
    updated: int
    consents: int
    restored: list[tuple[str, datetime]]
    """Erased customers sent again (a CRM sync): profiles again, no longer erased; with when
    they had been erased."""


_PROFILE = 'customer_id, name, phone, lifecycle_stage, country, "timezone", attributes'
_CONSENT = "customer_id, consent_source, COALESCE(consent_text, '') AS consent_text, consent_at"
_THIS_IMPORT = "FROM customer_import_row WHERE import_id = :import_id"


def _latest(duplicates: bool) -> str:
    """Each customer's last line: a file that names an id twice ends as the sequential upsert
    would. Without duplicates, the rows as they are (ranking them would double the merge's time)."""
    if not duplicates:
        return f"SELECT {_PROFILE} {_THIS_IMPORT}"
    ranked = f"SELECT {_PROFILE}, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY line DESC) AS rank"
    return f"SELECT {_PROFILE} FROM ({ranked} {_THIS_IMPORT}) AS ranked WHERE rank = 1"


def _first_consent(duplicates: bool) -> str:
    """Each customer's first line with a consent: the one a sequential first-only upsert records."""
    given = f"{_THIS_IMPORT} AND consent_source IS NOT NULL"
    if not duplicates:
        return f"SELECT {_CONSENT} {given}"
    ranked = f"SELECT {_CONSENT}, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY line) AS rank"
    picked = "customer_id, consent_source, consent_text, consent_at"
    return f"SELECT {picked} FROM ({ranked} {given}) AS ranked WHERE rank = 1"


_COUNTS = f"""
    SELECT (SELECT count(*) {_THIS_IMPORT}), count(*), count(customer.id), count(customer.erased_at)
    FROM (SELECT DISTINCT customer_id {_THIS_IMPORT}) AS staged
    LEFT JOIN customer ON customer.id = staged.customer_id
"""
"""Rows, customers (fewer when an id is on several lines), those that exist, those erased."""

_ERASED = f"""
    SELECT customer.id, customer.erased_at FROM customer
    WHERE customer.erased_at IS NOT NULL AND customer.id IN (SELECT customer_id {_THIS_IMPORT})
"""

_CUSTOMERS = """
    INSERT INTO customer (id, name, phone, lifecycle_stage, country, "timezone", attributes, created_at)
    SELECT customer_id, name, phone, lifecycle_stage, country, "timezone", attributes, :now
    FROM ({latest}) AS latest WHERE true
    ON CONFLICT (id) DO UPDATE SET
        name = excluded.name, phone = excluded.phone, lifecycle_stage = excluded.lifecycle_stage,
        country = excluded.country, "timezone" = excluded."timezone",
        attributes = excluded.attributes, erased_at = NULL
"""
"""Create or replace: every profile field from the row, ``created_at`` kept, an erasure undone
(``WHERE true``: SQLite's upsert after a SELECT needs a WHERE to parse)."""

_GRANT = (
    "SELECT customer_id, 'sms', 'marketing', consent_source, consent_text, {granted}, "
    "COALESCE(consent_at, :now), :now"
)
_NEW_CONSENT = (
    'INSERT INTO consent (customer_id, channel, purpose, source, "text", granted, "at", updated_at)'
)
_NEW_EVENT = (
    'INSERT INTO consent_event (customer_id, channel, purpose, source, "text", action, actor, "at", '
    "recorded_at)"
)
_NO_CONSENT_YET = """
    NOT EXISTS (SELECT 1 FROM consent WHERE consent.customer_id = given.customer_id
                AND consent.channel = 'sms' AND consent.purpose = 'marketing')
"""

_CONSENTS_POSTGRES = f"""
    WITH recorded AS (
        {_NEW_CONSENT} {_GRANT.format(granted="true")} FROM ({{given}}) AS given
        ON CONFLICT (customer_id, channel, purpose) DO NOTHING
        RETURNING customer_id, source, "text", "at"
    )
    {_NEW_EVENT} SELECT customer_id, 'sms', 'marketing', source, "text", 'granted', :actor, "at", :now
    FROM recorded
"""
"""First only, exactly: the audit rows are those of the consents this insert made, not ones a
concurrent grant made first."""

_CONSENT_EVENTS_SQLITE = f"""
    {_NEW_EVENT} {_GRANT.format(granted="'granted', :actor")}
    FROM ({{given}}) AS given WHERE {_NO_CONSENT_YET}
"""
_CONSENTS_SQLITE = f"""
    {_NEW_CONSENT} {_GRANT.format(granted="1")} FROM ({{given}}) AS given WHERE {_NO_CONSENT_YET}
"""
"""SQLite has no INSERT in a CTE; its writer holds the one write lock, so checking first is exact.
The audit rows go first: once ``consent`` has the rows, the check would find them."""


async def merge_staged(session: AsyncSession, import_id: str, *, actor: str | None, now: datetime) -> Merged:
    """Merge an import's staged rows into ``customer``, and their consent into ``consent`` and
    ``consent_event`` for customers with none on record, as statements over the whole import (in
    the session's transaction, not committed). The staged rows are left for the caller to delete.
    """
    given = {"import_id": import_id, "actor": actor, "now": now}
    connection = await session.connection()

    async def run(sql: str, **types: Any) -> Any:
        query = text(sql)
        if ":now" in sql:  # bound as the column type binds it (SQLite stores it as text)
            query = query.bindparams(bindparam("now", type_=UTCDateTime()))
        params = {name: value for name, value in given.items() if f":{name}" in sql}
        return await connection.execute(query.columns(**types) if types else query, params)

    rows, distinct, existing, erased = (await run(_COUNTS)).one()
    restored = []
    if erased:
        restored = [(r[0], r[1]) for r in await run(_ERASED, id=String(), erased_at=UTCDateTime())]
    duplicates = rows != distinct
    await run(_CUSTOMERS.format(latest=_latest(duplicates)))
    first = _first_consent(duplicates)
    if connection.dialect.name == "postgresql":
        consents = (await run(_CONSENTS_POSTGRES.format(given=first))).rowcount
    else:
        await run(_CONSENT_EVENTS_SQLITE.format(given=first))
        consents = (await run(_CONSENTS_SQLITE.format(given=first))).rowcount
    return Merged(created=distinct - existing, updated=existing, consents=consents, restored=restored)
