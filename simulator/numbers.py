"""Phone number forms the providers use: E.164, mainland national, country code + subscriber."""

from __future__ import annotations

import re

import phonenumbers

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_MAINLAND = re.compile(r"^(?:\+86|0086|86)?(1\d{10})$")


def mainland_national(raw: str) -> str | None:
    """The 11-digit national form of a mainland mobile (``+86``, ``0086`` or ``86`` prefix allowed)."""
    match = _MAINLAND.match(raw.strip())
    return match.group(1) if match else None


def e164(raw: str) -> str:
    """``raw`` in E.164 where its form says how; anything else is returned stripped, as it was."""
    number = raw.strip()
    if number.startswith("+"):
        return number
    national = mainland_national(number)
    if national is not None:
        return "+86" + national
    if number.startswith("00"):
        return "+" + number[2:]
    return number


def same_number(a: str, b: str) -> bool:
    return e164(a) == e164(b)


def split(number: str) -> tuple[str, str]:
    """Country calling code and subscriber number: ``+8613800138000`` -> ``("86", "13800138000")``."""
    try:
        parsed = phonenumbers.parse(e164(number))
    except phonenumbers.NumberParseException:
        return "86", number.lstrip("+")
    return str(parsed.country_code), str(parsed.national_number)


def iso_region(number: str) -> str:
    """The ISO region of an E.164 number, e.g. ``CN``; empty if unknown."""
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return ""
    return region if region and region != "ZZ" else ""


def is_mobile(number: str) -> bool:
    """A plausible mobile in E.164: mainland numbers by pattern, others by ``phonenumbers``."""
    if not E164.match(number):
        return False
    if number.startswith("+86"):
        return mainland_national(number) is not None
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return False
