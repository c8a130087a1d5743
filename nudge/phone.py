"""Phone numbers: E.164 normalisation and masking for logs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import phonenumbers

from nudge.errors import InvalidPhoneNumber

_DIGITS = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9A-Za-z][-_.])"  # not joined to a token before it
    r"\+?\d[\d\s\-()]{6,}\d"
    r"(?![0-9A-Za-z_])(?![-_.][0-9A-Za-z])"  # nor after it
)
"""A run of digits that could be a phone number; not one inside an id: a hex id, a token, or a
run joined to letters or digits by ``-``, ``_`` or ``.`` (a run id's last group,
``o-20261201123456``, ``cust-0001234567``). After ``/`` or ``:`` it is masked: a customer id that is
a phone number shows in paths and workflow ids (``journey:cart_abandonment:13800138000:k1``)."""


_PARSED: ContextVar[dict[str, phonenumbers.PhoneNumber | None] | None] = ContextVar(
    "nudge_parsed_numbers", default=None
)


def parse_number(to: str) -> phonenumbers.PhoneNumber | None:
    """``to`` (E.164) parsed, or None when it is no number at all. Inside ``parsing_once()``,
    each number is parsed only the first time (and given out frozen)."""
    memo = _PARSED.get()
    if memo is not None and to in memo:
        return memo[to]
    try:
        number: phonenumbers.PhoneNumber | None = phonenumbers.parse(to, None)
    except phonenumbers.NumberParseException:
        number = None
    if memo is not None:
        # Frozen: each caller gets the same object, so a change to it would fail, not spread.
        memo[to] = number = phonenumbers.FrozenPhoneNumber(number) if number is not None else None
    return number


@contextmanager
def parsing_once() -> Iterator[None]:
    """Within this block (and the tasks it starts), ``parse_number`` parses each number once.

    A broadcast's batch routes, times and dispatches each of its numbers: parsing one costs 15
    to 40 µs, and three parses were about a tenth of a recipient's CPU. The numbers are kept for the block
    only (one batch), never for the worker's life."""
    token = _PARSED.set({})
    try:
        yield
    finally:
        _PARSED.reset(token)


def to_e164(raw: str, *, default_region: str = "CN") -> str:
    """Parse ``raw`` and return it in E.164 form, or raise ``InvalidPhoneNumber``."""
    try:
        parsed = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"cannot parse phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber("not a valid phone number for its region")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask(number: str) -> str:
    """Keep an international prefix and the last four digits: ``+86*******8000``.

    A number without ``+`` keeps only its last four digits: ``******2671``.
    """
    digits = number.strip()
    if len(digits) <= 6:
        return "*" * len(digits)
    prefix = digits[:3] if digits.startswith("+") else ""
    return prefix + "*" * (len(digits) - len(prefix) - 4) + digits[-4:]


def mask_in_text(text: str) -> str:
    """Mask every phone-number-looking run of digits inside free text."""
    return _DIGITS.sub(lambda m: mask(re.sub(r"[\s\-()]", "", m.group(0))), text)


def phone_hash(e164: str) -> str:
    """A stable hash of a number: the suppression list keeps this, not the number, so it outlives
    the customer's deletion without keeping their number."""
    return hashlib.sha256(f"nudge-suppression:{e164}".encode()).hexdigest()
