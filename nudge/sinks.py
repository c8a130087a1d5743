"""The stream out: what Nudge publishes (``EventKind``) and where to (the sinks an operator
configures in ``NUDGE_STREAM_WEBHOOKS`` and ``NUDGE_STREAM_BROKER``).

Pure configuration: the outbox that records events for each sink is ``nudge.store.stream``, the
dispatcher that delivers them ``starter.stream``, the signature receivers check
``nudge.stream_signature``.
"""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class EventKind(StrEnum):
    """What happened to a message, or what its customer did. Wire values: receivers switch on
    them, so they are never renamed."""

    SENT = "sent"
    """A provider took the message."""
    BLOCKED = "blocked"
    """The gate refused it (``reason`` says why: ``consent_withdrawn``, ``quiet_hours``...)."""
    FAILED = "failed"
    """A provider refused it for good, at send time or in a receipt (``error_code``)."""
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    CLICKED = "clicked"
    """A person's first click on one of its links (bots' are not published)."""
    REPLIED = "replied"
    """A reply from the customer's number (``keyword``: ``stop``, ``start``, ``help`` or none)."""
    OPTED_OUT = "opted_out"
    """A STOP-type reply, or a provider's opt-out code at send time (``source``)."""
    CONVERTED = "converted"
    """A journey's goal event credited to the message (``revenue``, ``goal_event``)."""


PII_FIELDS = frozenset({"to", "body", "from", "text"})
"""The fields only a sink with ``include_pii`` gets: the number and the words exchanged."""


class StreamSink(BaseModel):
    """What every sink has: a name (its outbox rows carry it), whether it gets personal data, and
    which kinds of event it wants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    """Stable: renaming a sink leaves its undelivered events behind under the old name."""
    include_pii: bool = False
    """Send the phone number and the message or reply text too (off: neither ever leaves)."""
    kinds: frozenset[EventKind] | None = None
    """The kinds this sink gets; None: every kind."""

    def wants(self, kind: EventKind) -> bool:
        return self.kinds is None or kind in self.kinds


class StreamWebhook(StreamSink):
    """A signed HTTP webhook: batches of events POSTed as JSON, signed with ``secret``."""

    url: str = Field(min_length=1)
    """May carry a token in its path or query: logs name its host only."""
    secret: SecretStr
    """The HMAC-SHA256 key of the ``Nudge-Signature`` header (at least 16 characters)."""

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        """Parsed here, so that a URL no client can use stops the gateway at start with the
        variable's name, instead of failing every delivery."""
        if not value.startswith(("http://", "https://")):
            raise ValueError("the webhook url must start with http:// or https://")
        parts = parsed(value, "the webhook url")
        if not parts.hostname or any(c.isspace() for c in value):
            raise ValueError("the webhook url has no valid host")
        return value

    @field_validator("secret")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        """A short secret is guessable, and a guessed one lets anyone forge events."""
        if len(value.get_secret_value()) < 16:
            raise ValueError("the webhook secret must be at least 16 characters")
        return value


class StreamBroker(StreamSink):
    """A Redis stream the operator already runs: each event appended with ``XADD``, its id in the
    entry, so that a consumer group deduplicates as a webhook receiver does."""

    name: str = Field(default="broker", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    url: SecretStr
    """``redis://[:password@]host:port/db`` (``rediss://`` for TLS); a secret: it may hold a password."""
    stream: str = Field(default="nudge:events", min_length=1, max_length=200)
    """The stream's key."""
    maxlen: int | None = Field(default=1_000_000, ge=1)
    """Roughly how many entries the stream keeps (``XADD MAXLEN ~``); None: no trimming."""

    @field_validator("url")
    @classmethod
    def _redis(cls, value: SecretStr) -> SecretStr:
        """Parsed here (the errors never quote it: it may hold a password), so that the gateway
        does not fail later, at start, on a URL the Redis client cannot take."""
        url = value.get_secret_value()
        what = "the broker url"
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{what} must start with redis://, rediss:// or unix://")
        parts = parsed(url, what)
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError(f"{what} needs the socket's path (unix:///path/to/redis.sock)")
            return value
        if not parts.hostname:
            raise ValueError(f"{what} has no host (redis://host:6379/0)")
        database = parts.path.strip("/")
        if database and not (database.isascii() and database.isdigit()):
            raise ValueError(f"{what}: its database must be a number (redis://host:6379/0)")
        return value


def parsed(url: str, what: str) -> SplitResult:
    """``url`` split, its port checked; an error names ``what``, never the URL (it may hold a secret)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"{what} is malformed (its host or port)") from None
    if port == 0:
        raise ValueError(f"{what} has port 0")
    return parts
