"""The store: SQLModel tables and the async engine (SQLite by default, PostgreSQL in production).

One module per concern, by what reads and writes the tables; import from here:

- ``columns``: the UTC timestamp type and field helpers every table uses.
- ``engine``: the engine, SQLite's pragmas, write and read sessions, ``init_db`` and the migration.
- ``customers``: the customer profile.
- ``imports``: customer import jobs and the rows staged for them until their commit.
- ``events``: accepted events and the journeys they entered.
- ``messages``: outbound messages, their receipts, links and clicks, and inbound replies.
- ``suppression``: the numbers that must not be messaged.
- ``consent``: current consent and its audit trail.
- ``registry``: templates and signatures under review.
- ``pauses``: complaints, pauses and their audit.
- ``keys``: API keys (their digests) and scopes.
- ``erasures``: the audit of customers forgotten.
- ``analytics``: conversions, experiments and their assignments.
- ``audiences``: saved audiences (queries over profiles) and uploaded lists' members.
- ``stream``: the outbox of events for the configured sinks, and ``publish``.
"""

from nudge.store.analytics import Assignment, Conversion, Experiment
from nudge.store.audiences import Audience, AudienceBase, AudienceMember
from nudge.store.columns import RowBuilder, UTCDateTime, utcnow
from nudge.store.consent import Consent, ConsentBase, ConsentEvent, ConsentIn, consent_key
from nudge.store.customers import Customer, CustomerBase, CustomerCreate, CustomerPublic
from nudge.store.engine import create_engine, init_db, read_sessions, session_factory
from nudge.store.erasures import Erasure, ErasureBase
from nudge.store.events import EventRecord, JourneyEntry
from nudge.store.imports import CustomerImport, CustomerImportBase, CustomerImportRow, ImportStatus
from nudge.store.keys import ApiKey, ApiKeyBase
from nudge.store.limits import RouteBreaker, RoutePace
from nudge.store.messages import (
    Click,
    InboundMessage,
    Link,
    Message,
    MessageStatusChange,
    new_link_code,
    new_message_id,
)
from nudge.store.pauses import Complaint, Pause, PauseBase, PauseEvent, PauseEventBase
from nudge.store.registry import SmsSignature, SmsTemplate
from nudge.store.stream import StreamEvent, publish
from nudge.store.suppression import SUPPRESS_ALL, Suppression, suppress

__all__ = [
    "SUPPRESS_ALL",
    "ApiKey",
    "ApiKeyBase",
    "RouteBreaker",
    "RoutePace",
    "Assignment",
    "Audience",
    "AudienceBase",
    "AudienceMember",
    "Click",
    "Complaint",
    "Consent",
    "ConsentBase",
    "ConsentEvent",
    "ConsentIn",
    "Conversion",
    "Customer",
    "CustomerBase",
    "CustomerCreate",
    "CustomerImport",
    "CustomerImportBase",
    "CustomerImportRow",
    "CustomerPublic",
    "Erasure",
    "ErasureBase",
    "EventRecord",
    "Experiment",
    "ImportStatus",
    "InboundMessage",
    "JourneyEntry",
    "Link",
    "Message",
    "MessageStatusChange",
    "Pause",
    "PauseBase",
    "PauseEvent",
    "PauseEventBase",
    "RowBuilder",
    "SmsSignature",
    "SmsTemplate",
    "StreamEvent",
    "Suppression",
    "UTCDateTime",
    "consent_key",
    "create_engine",
    "init_db",
    "publish",
    "read_sessions",
    "session_factory",
    "suppress",
    "new_link_code",
    "new_message_id",
    "utcnow",
]
