"""The ``Nudge-Signature`` header of the stream's webhooks, for Nudge and for receivers.

``Nudge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>``: the time
is signed with the body, so a captured request cannot be replayed once it is older than the
receiver's tolerance. A receiver verifies over the raw body bytes, before parsing them::

    from nudge.stream_signature import verify
    verify(secret, request.headers["Nudge-Signature"], await request.body())  # raises if forged

Several ``v1`` values may appear (one per secret while a secret is rotated); one match is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence

from nudge.errors import InvalidInput

HEADER = "Nudge-Signature"
DEFAULT_TOLERANCE = 300.0
"""Seconds a signature stays valid: clocks drift, and a retry is signed anew."""


class InvalidStreamSignature(InvalidInput):
    """A ``Nudge-Signature`` that is missing, malformed, too old or does not match the body."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
        """``malformed``, ``expired`` or ``mismatch``."""


def digest(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int) -> str:
    """The header's value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={digest(secret, timestamp, body)}"


def verify(
    secrets: str | Sequence[str],
    header: str | None,
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check ``header`` against the raw ``body``; returns its timestamp.

    Args:
        secrets: The sink's secret, or several while it is being rotated.
        header: The ``Nudge-Signature`` header as received (None when it was missing).
        body: The request body, byte for byte as received.
        tolerance: How many seconds old (or ahead) the signature may be.
        now: The receiver's clock in unix seconds; the system's when not given.

    Raises:
        InvalidStreamSignature: the header is missing or malformed, too old, or matches no secret.
    """
    timestamp, signatures = _parse(header or "")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        age = f"{current - timestamp:.0f} s old (tolerance {tolerance:.0f} s)"
        raise InvalidStreamSignature(f"the signature is {age}", reason="expired")
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    expected = [digest(key, timestamp, body) for key in keys]
    if not any(hmac.compare_digest(want, got) for want in expected for got in signatures):
        raise InvalidStreamSignature("the signature does not match the body", reason="mismatch")
    return timestamp


TIMESTAMP = re.compile(r"[0-9]{1,12}")
"""Unix seconds in ASCII digits (``str.isdigit`` takes ``²``; 12 digits reach the year 33658)."""
SIGNATURE = re.compile(r"[0-9a-f]{64}")
"""A hex SHA-256 (``hmac.compare_digest`` raises on non-ASCII text)."""


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and TIMESTAMP.fullmatch(value):
            timestamp = int(value)
        elif key == "v1" and SIGNATURE.fullmatch(value):
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidStreamSignature(f"{HEADER} needs t=<unix seconds>,v1=<hex>", reason="malformed")
    return timestamp, signatures
