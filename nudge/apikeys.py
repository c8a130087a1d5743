"""API keys: their form, their digest and what each scope allows.

A key reads ``nk_<prefix>_<secret>``: ``prefix`` is 8 lowercase hex digits, public (logs, audits
and ``nudge keys list`` name a key by it), and ``secret`` is 43 URL-safe characters (256 random
bits). Only the SHA-256 digest of the whole key is stored: with that much entropy a fast digest is
safe, where a password would need a slow one, and it keeps the check cheap on every event.

Scopes (``admin`` allows everything):

- ``events``: post events and upsert customers, what a service needs;
- ``read``: reports, metrics, the registry and pauses, message search (customer ids and masked
  numbers, never a name, a text or a body) and the dashboard: no personal data;
- ``admin``: templates, signatures, pauses, consent, keys, erasure, reading profiles and a
  customer's timeline (their events' properties, replies and consent trail).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from enum import StrEnum

PREFIX_LENGTH = 8
_KEY = re.compile(r"nk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")


class Scope(StrEnum):
    EVENTS = "events"
    READ = "read"
    ADMIN = "admin"


def generate() -> tuple[str, str]:
    """A new key and its public prefix."""
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    return f"nk_{prefix}_{secrets.token_urlsafe(32)}", prefix


def prefix_of(key: str) -> str | None:
    """The public prefix of a well-formed key; None for anything else."""
    match = _KEY.fullmatch(key)
    return match.group(1) if match else None


def digest(key: str) -> str:
    """What the store keeps of a key: the hex SHA-256 of the whole of it."""
    return hashlib.sha256(key.encode()).hexdigest()


def matches(key: str, stored_digest: str) -> bool:
    """Whether ``key`` is the one ``stored_digest`` was made from (in constant time)."""
    return hmac.compare_digest(digest(key), stored_digest)


def allows(scopes: Iterable[str], needed: Scope) -> bool:
    """Whether a key with ``scopes`` may do what needs ``needed``: its own scope, or admin."""
    held = set(scopes)
    return needed.value in held or Scope.ADMIN.value in held
