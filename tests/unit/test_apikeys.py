"""API keys' form, digest and scopes (``nudge.apikeys``), against values written out by hand."""

from __future__ import annotations

import re

import pytest

from nudge import apikeys
from nudge.apikeys import Scope

FIXED = "nk_00000000_" + "A" * 43
FIXED_SHA256 = "5784aebcaf2adb1cd7d5373c7cc030e398b9411805424b16f0885003812d2cac"
"""``printf %s "$FIXED" | sha256sum``: an oracle outside Python."""


def test_generate_makes_distinct_keys_of_the_documented_form() -> None:
    """nk_, 8 hex digits (the prefix it answers), _, 43 URL-safe characters; never twice the same."""
    made = [apikeys.generate() for _ in range(50)]
    for key, prefix in made:
        assert re.fullmatch(r"nk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", key), key
        assert key.split("_", 2)[1] == prefix
    assert len({key for key, _ in made}) == 50
    assert len({prefix for _, prefix in made}) == 50


def test_digest_is_the_sha256_of_the_whole_key() -> None:
    """The stored digest of a known key is its SHA-256 as sha256sum computes it."""
    assert apikeys.digest(FIXED) == FIXED_SHA256
    assert apikeys.matches(FIXED, FIXED_SHA256)
    assert not apikeys.matches(FIXED[:-1] + "B", FIXED_SHA256)


@pytest.mark.parametrize(
    ("key", "prefix"),
    [
        (FIXED, "00000000"),
        ("nk_0a1b2c3d_" + "-_" * 21 + "z", "0a1b2c3d"),
        ("nk_0A1B2C3D_" + "A" * 43, None),  # the prefix is lowercase hex
        ("nk_0000000_" + "A" * 44, None),  # 7 digits
        ("nk_00000000_" + "A" * 42, None),  # a short secret
        ("nk_00000000_" + "A" * 44, None),  # a long one
        ("nk_00000000_" + "A" * 42 + "=", None),  # not URL-safe base64
        ("xx_00000000_" + "A" * 43, None),
        (" " + FIXED, None),
        (FIXED + "\n", None),
        ("", None),
    ],
)
def test_prefix_of_accepts_only_well_formed_keys(key: str, prefix: str | None) -> None:
    """A well-formed key answers its prefix; anything else, None (and never reaches the store)."""
    assert apikeys.prefix_of(key) == prefix


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        (["events"], Scope.EVENTS, True),
        (["events"], Scope.READ, False),
        (["events"], Scope.ADMIN, False),
        (["read"], Scope.READ, True),
        (["read"], Scope.EVENTS, False),
        (["read"], Scope.ADMIN, False),
        (["admin"], Scope.EVENTS, True),
        (["admin"], Scope.READ, True),
        (["admin"], Scope.ADMIN, True),
        (["events", "read"], Scope.READ, True),
        (["events", "read"], Scope.ADMIN, False),
        ([], Scope.READ, False),
    ],
)
def test_allows_follows_the_scope_table(held: list[str], needed: Scope, allowed: bool) -> None:
    """Each scope allows itself; admin allows everything; nothing else allows admin."""
    assert apikeys.allows(held, needed) is allowed
