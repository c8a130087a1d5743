"""The stream's ``Nudge-Signature``: HMAC-SHA256 over the timestamp and the raw body, checked
against a vector computed here by hand, and refused when forged, stale, malformed or re-keyed."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Any

import pytest

from nudge.errors import NudgeError
from nudge.stream_signature import InvalidStreamSignature, sign, verify

SECRET = "whsec-0123456789abcdef"
BODY = b'{"events":[{"id":"4f1c","kind":"delivered"}]}'
T = 1_767_225_600  # 2026-01-01T00:00:00Z


def test_stream_signature_matches_a_hand_computed_hmac() -> None:
    """``t=<t>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``, computed here with hmac directly."""
    expected = hmac.new(SECRET.encode(), b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, timestamp=T) == f"t=1767225600,v1={expected}"
    assert verify(SECRET, f"t=1767225600,v1={expected}", BODY, now=T + 10) == T


@pytest.mark.parametrize(
    ("header", "body", "now", "reason"),
    [
        (sign(SECRET, BODY, timestamp=T), BODY + b" ", T, "mismatch"),
        (sign("another-secret-of-16+", BODY, timestamp=T), BODY, T, "mismatch"),
        (sign(SECRET, BODY, timestamp=T), BODY, T + 301, "expired"),
        (sign(SECRET, BODY, timestamp=T + 301), BODY, T, "expired"),
        (sign(SECRET, BODY, timestamp=T).replace(f"t={T}", f"t={T + 1}"), BODY, T, "mismatch"),
        ("v1=abc", BODY, T, "malformed"),
        (f"t={T}", BODY, T, "malformed"),
        ("", BODY, T, "malformed"),
    ],
    ids=[
        "body-changed",
        "wrong-secret",
        "too-old",
        "from-the-future",
        "time-changed",
        "no-t",
        "no-v1",
        "empty",
    ],
)
def test_stream_signature_refuses_what_was_not_signed_so(
    header: str, body: bytes, now: int, reason: str
) -> None:
    """A changed body, another secret, a replay past the tolerance, a shifted time or a header
    without both parts is refused, with the reason."""
    with pytest.raises(InvalidStreamSignature) as refused:
        verify(SECRET, header, body, now=now)
    assert refused.value.reason == reason


def test_stream_signature_accepts_either_secret_while_one_is_rotated() -> None:
    """During a rotation the receiver holds both secrets; a body signed with either verifies."""
    new = "whsec-new-0123456789ab"
    assert verify([new, SECRET], sign(SECRET, BODY, timestamp=T), BODY, now=T) == T
    assert verify([new, SECRET], sign(new, BODY, timestamp=T), BODY, now=T) == T
    with pytest.raises(InvalidStreamSignature):
        verify([new], sign(SECRET, BODY, timestamp=T), BODY, now=T)


CRAFTED = [
    f"t=²,v1={'0' * 64}",  # a digit to str.isdigit, not to int()
    f"t={T},v1={'é' * 64}",  # not ASCII: compare_digest raises TypeError
    f"t={'9' * 400},v1={'0' * 64}",  # a time too big for a float: OverflowError
    f"t={T},v1=zz",  # not hex
    f"t=-{T},v1={'0' * 64}",
]


@pytest.mark.parametrize(
    "header", CRAFTED, ids=["superscript-t", "non-ascii-v1", "huge-t", "not-hex", "negative"]
)
def test_stream_signature_refuses_a_crafted_header_as_malformed(header: str) -> None:
    """Whatever a header holds, a receiver gets ``InvalidStreamSignature`` (a ``NudgeError``),
    never a ``ValueError``, ``TypeError`` or ``OverflowError`` from inside the check."""
    with pytest.raises(InvalidStreamSignature) as refused:
        verify(SECRET, header, BODY, now=T)
    assert refused.value.reason == "malformed" and isinstance(refused.value, NudgeError)


def readme_verify() -> Any:
    """The receiver's ``verify`` from README's "Streaming events out" section, as printed."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    [snippet] = [
        block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "def verify(" in block
    ]
    scope: dict[str, Any] = {}
    exec(snippet, scope)  # noqa: S102 - the README's own example
    return scope["verify"]


def test_the_readmes_receiver_snippet_accepts_a_signature_and_refuses_crafted_headers() -> None:
    """The snippet receivers copy verifies a real signature and answers False, without raising,
    to every crafted header."""
    verify_as_printed = readme_verify()
    body = b'{"events":[]}'
    assert verify_as_printed(SECRET, sign(SECRET, body, timestamp=int(time.time())), body)
    for header in CRAFTED:
        assert verify_as_printed(SECRET, header, body) is False
