"""The store: SQLModel tables and the async engine (SQLite by default, PostgreSQL in production).

Table families follow the ``XBase`` / table ``X`` pattern. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, TypeDecorator, UniqueConstraint, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Field, SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.phone import phone_hash


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamps on every backend (SQLite hands them back naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Store UTC on every backend (SQLite would drop an offset; a naive value means UTC)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), **kw))


class CustomerBase(SQLModel):
    name: str | None = None
    phone: str | None = Field(default=None, index=True)
    lifecycle_stage: str = "new"
    country: str | None = None
    timezone: str | None = None


class Customer(CustomerBase, table=True):
    id: str = Field(primary_key=True, max_length=200)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = _ts(nullable=False)


class EventRecord(SQLModel, table=True):
    """Every accepted event, deduplicated by ``event_id``."""

    __tablename__ = "event"
    event_id: str = Field(primary_key=True, max_length=200)
    customer_id: str = Field(index=True)
    name: str = Field(index=True)
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    occurred_at: datetime = _ts(nullable=False)
    received_at: datetime = _ts(nullable=False)
    workflow_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))


class JourneyEntry(SQLModel, table=True):
    """One row per journey instance the gateway started; used for re-entry and routing events."""

    __tablename__ = "journey_entry"
    workflow_id: str = Field(primary_key=True)
    journey: str = Field(index=True)
    customer_id: str = Field(index=True)
    key: str | None = None
    run_id: str | None = None
    entered_at: datetime = _ts(nullable=False)
    entries: int = 1
    closed: bool = False


class Message(SQLModel, table=True):
    """One outbound message; ``idempotency_key`` makes a retried send a no-op."""

    __table_args__ = (UniqueConstraint("idempotency_key"),)
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, primary_key=True)
    idempotency_key: str = Field(max_length=400)
    workflow_id: str = Field(index=True)
    journey: str
    step: str
    customer_id: str = Field(index=True)
    template: str
    variant: str | None = None
    category: str
    to: str | None = None
    body: str = ""
    segments: int = 0
    provider: str | None = None
    provider_message_id: str | None = Field(default=None, index=True)
    status: str = "pending"
    error_code: str | None = None
    reason: str | None = None
    notify_receipt: bool = False
    clicked: bool = False
    params: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """The template variables as sent (short links in place), for a resend on another route."""
    route: str | None = None
    signature: str | None = None
    cost: float | None = None
    currency: str | None = None
    defer_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    """A deferred message: when to try again. A capped one: when its cap has room again."""
    cap_reserved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    """When the message took its place under the frequency caps; sent messages count from here."""
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class MessageStatusChange(SQLModel, table=True):
    """Every receipt as received, even duplicates and ones that did not change the status."""

    __tablename__ = "message_status_change"
    id: int | None = Field(default=None, primary_key=True)
    message_id: str | None = Field(default=None, index=True)
    provider: str
    provider_message_id: str | None = Field(default=None, index=True)
    status: str
    error_code: str | None = None
    applied: bool = False
    at: datetime = _ts(nullable=False)
    raw: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class Link(SQLModel, table=True):
    """A tracked short link in a message."""

    code: str = Field(default_factory=lambda: secrets.token_urlsafe(6), primary_key=True)
    message_id: str = Field(index=True)
    target_url: str
    created_at: datetime = _ts(nullable=False)


class Click(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(index=True)
    message_id: str = Field(index=True)
    user_agent: str | None = None
    at: datetime = _ts(nullable=False)


class InboundMessage(SQLModel, table=True):
    """A reply from a customer (STOP, 退订, R, HELP...), as a provider delivered it."""

    __tablename__ = "inbound_message"
    __table_args__ = (UniqueConstraint("provider", "provider_ref"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str
    provider_ref: str = Field(max_length=200)
    """The provider's id for the reply (MessageSid, sequence_id...); redeliveries share it."""
    from_number: str = Field(index=True)
    to: str | None = None
    """Our number, sign name or extension code the reply was sent to."""
    text: str
    keyword: str | None = None
    """``stop``, ``start`` or ``help`` when the text is one of their keywords."""
    received_at: datetime = _ts(nullable=False)
    raw: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


SUPPRESS_ALL = "all"
"""``Suppression.scope`` of a number that gets nothing at all (invalid, carrier-blocked)."""


class Suppression(SQLModel, table=True):
    """A number that must not get marketing messages, and why (a STOP reply, a provider's opt-out).

    Keyed by ``nudge.phone.phone_hash``: it survives the customer's deletion without the number.
    A ``scope`` of ``all`` is a number that is invalid or blocked by its carrier: it gets no
    message of any kind, and a START reply does not lift it.
    """

    __tablename__ = "suppressed_number"
    phone_hash: str = Field(primary_key=True, max_length=64)
    reason: str
    source: str
    scope: str | None = None
    """``None``: marketing only (an opt-out). ``all``: every message (see ``SUPPRESS_ALL``)."""
    created_at: datetime = _ts(nullable=False)


async def suppress(
    session: AsyncSession, number: str, *, reason: str, source: str, scope: str | None = None
) -> bool:
    """Add ``number`` to the suppression list (not committed); True if that changed anything.

    An opt-out never narrows an ``all`` suppression, and an invalid number widens an opt-out.
    """
    row = await session.get(Suppression, phone_hash(number))
    if row is None:
        session.add(Suppression(phone_hash=phone_hash(number), reason=reason, source=source, scope=scope))
        return True
    if scope == SUPPRESS_ALL and row.scope != SUPPRESS_ALL:
        row.scope, row.reason, row.source = scope, reason, source
        session.add(row)
        return True
    return False


# ----- consent (issue 4) ---------------------------------------------------------------------


class ConsentBase(SQLModel):
    channel: str = Field(default="sms", max_length=20)
    purpose: str = Field(default="marketing", max_length=40)
    source: str = Field(max_length=200)
    """Where it was given or withdrawn: ``checkout_form``, ``import:crm``, ``reply:aliyun``..."""
    text: str = ""
    """The wording the customer saw (or the reply they sent)."""


class Consent(ConsentBase, table=True):
    """A customer's current consent for one channel and purpose: what the gate reads."""

    customer_id: str = Field(primary_key=True, max_length=200)
    channel: str = Field(default="sms", primary_key=True, max_length=20)
    purpose: str = Field(default="marketing", primary_key=True, max_length=40)
    granted: bool
    at: datetime = _ts(nullable=False)
    """When it was given or withdrawn."""
    updated_at: datetime = _ts(nullable=False)


def consent_key(customer_id: str, channel: str = "sms", purpose: str = "marketing") -> dict[str, str]:
    """The primary key of a ``Consent`` row, for ``session.get`` (named: column order is not ours)."""
    return {"customer_id": customer_id, "channel": channel, "purpose": purpose}


class ConsentEvent(ConsentBase, table=True):
    """The audit trail: every grant and withdrawal, as recorded, never updated."""

    __tablename__ = "consent_event"
    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True, max_length=200)
    action: str
    """``granted`` or ``withdrawn``."""
    actor: str | None = None
    """Who recorded it (an API caller, ``nudge consent``, the reply webhook)."""
    at: datetime = _ts(nullable=False)
    recorded_at: datetime = _ts(nullable=False)


# ----- frequency caps (issue 4) ---------------------------------------------------------------


# ----- template and signature registry (issue 4) ---------------------------------------------


class SmsTemplate(SQLModel, table=True):
    """One language variant of a message template, and where it stands in review.

    ``language`` is ``""`` for the default variant (``nudge.templates.DEFAULT_LANGUAGE``). Only an
    approved variant is sent; editing the text of any variant makes it a draft again.
    """

    __tablename__ = "sms_template"
    code: str = Field(primary_key=True, max_length=100)
    language: str = Field(default="", primary_key=True, max_length=35)
    body: str
    category: str
    provider_codes: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))
    """Provider name -> the code that provider's console gave this text."""
    signature: str | None = None
    """The signature this template is bound to (else the route's)."""
    status: str = "draft"
    reason: str | None = None
    """Why it was rejected."""
    version: int = 1
    """Goes up with every change of the text, category, codes or signature."""
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)
    approved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class SmsSignature(SQLModel, table=True):
    """A signature (Aliyun and Tencent SignName) or sender (a Twilio number), and its review."""

    __tablename__ = "sms_signature"
    name: str = Field(primary_key=True, max_length=100)
    status: str = "draft"
    reason: str | None = None
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)
    approved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


# ----- complaints and pauses (issue 4) --------------------------------------------------------


class Complaint(SQLModel, table=True):
    """A complaint about one marketing message: an opt-out attributed to it, or a provider's
    opt-out, blacklist or carrier-filtering code. One per (message, kind), so a redelivered reply or
    receipt is counted once. The message's scopes are copied, so that evaluating a scope's rate
    reads this table and ``message`` by index only."""

    __table_args__ = (UniqueConstraint("message_id", "kind"),)
    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=64)
    kind: str
    """``opt_out`` (a STOP-type reply) or ``provider_code``."""
    code: str | None = None
    """The provider's code (``21610``, ``30007``...), or the reply's id for an opt-out."""
    template: str
    signature: str | None = None
    journey: str
    route: str | None = None
    at: datetime = _ts(nullable=False, index=True)


# Evaluating a scope counts its marketing messages over the window: by scope, then by time.
for _scope in ("template", "signature", "journey", "route"):
    Index(f"ix_message_{_scope}_created_at", getattr(Message, _scope), col(Message.created_at))


class PauseBase(SQLModel):
    scope: str = Field(primary_key=True, max_length=20)
    """``template``, ``signature``, ``journey`` or ``route``."""
    value: str = Field(primary_key=True, max_length=200)
    reason: str
    source: str
    """``auto`` (the complaint-rate breaker) or ``manual`` (``nudge pause``, the API)."""
    complaints: int | None = None
    """The figures that opened the breaker (an automatic pause): complaints, messages sent, and
    their ratio over the window."""
    sent: int | None = None
    rate: float | None = None
    created_by: str


class Pause(PauseBase, table=True):
    """A scope whose marketing sends the gate holds (``blocked``, reason ``paused:<scope>=<value>``)
    until it is resumed."""

    __tablename__ = "send_pause"
    created_at: datetime = _ts(nullable=False)


class PauseEventBase(SQLModel):
    scope: str
    value: str
    action: str
    """``paused`` or ``resumed``."""
    source: str
    reason: str | None = None
    by: str
    complaints: int | None = None
    sent: int | None = None
    rate: float | None = None


class PauseEvent(PauseEventBase, table=True):
    """The audit of pauses and resumes: who, when and why (``nudge pauses --history``)."""

    __tablename__ = "pause_event"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts(nullable=False, index=True)


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
            from pathlib import Path

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
    ``ALTER TABLE ... ADD COLUMN`` brings an existing database up to date; indexes added later
    (on new or old columns) are created too."""
    from sqlalchemy import inspect

    inspector = inspect(conn)
    for table in SQLModel.metadata.sorted_tables:
        existing = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in existing and column.nullable:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
        indexes = {index["name"] for index in inspector.get_indexes(table.name)}
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
