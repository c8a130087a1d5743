"""Frequency-cap counting (``full_cap``), judged against hand-worked tables: which reservations a
window counts, at its edge too, and when a full cap frees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nudge.caps import FullCap, Reservation, applicable, cap_reason, full_cap
from nudge.models import Category, FrequencyCap

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
DAY = FrequencyCap(limit=2, window=timedelta(hours=24))
WEEK_PER_JOURNEY = FrequencyCap(limit=1, window=timedelta(days=7), per="journey")
NONE_ALLOWED = FrequencyCap(limit=0, window=timedelta(hours=1))


def held(*hours_ago: float, journey: str = "cart_abandonment") -> list[Reservation]:
    return [Reservation(at=NOW - timedelta(hours=h), journey=journey) for h in hours_ago]


# (caps, reservations held, the full cap expected: (which cap, when it frees) or None)
CASES: list[tuple[list[FrequencyCap], list[Reservation], tuple[FrequencyCap, datetime | None] | None]] = [
    # One taken exactly 24 h ago has just left the 24 h window: one counted, room for another.
    ([DAY], held(24, 1), None),
    ([DAY], held(23, 1), (DAY, NOW + timedelta(hours=1))),
    # Three held, limit 2: the place frees when the second oldest (10 h ago) leaves, in 14 h.
    ([DAY], held(1, 20, 10), (DAY, NOW + timedelta(hours=14))),
    ([DAY], held(30, 25, 1), None),
    # A per-customer cap counts the customer's messages from every journey.
    ([DAY], held(3, journey="welcome") + held(1), (DAY, NOW + timedelta(hours=21))),
    ([WEEK_PER_JOURNEY], held(2, journey="welcome"), None),
    ([WEEK_PER_JOURNEY], held(48), (WEEK_PER_JOURNEY, NOW + timedelta(days=5))),
    ([NONE_ALLOWED], [], (NONE_ALLOWED, None)),
    # Every cap must hold: the day cap has room, the journey's week cap does not.
    ([DAY, WEEK_PER_JOURNEY], held(30), (WEEK_PER_JOURNEY, NOW + timedelta(days=7) - timedelta(hours=30))),
]
IDS = [
    "day-one-at-the-window-edge",
    "day-two-inside",
    "day-three-inside",
    "day-two-outside",
    "day-counts-every-journey",
    "journey-other-journey",
    "journey-same-journey",
    "limit-zero",
    "second-cap-full",
]


@pytest.mark.parametrize(("caps", "reservations", "expected"), CASES, ids=IDS)
def test_full_cap_counts_the_window_and_says_when_it_frees(
    caps: list[FrequencyCap],
    reservations: list[Reservation],
    expected: tuple[FrequencyCap, datetime | None] | None,
) -> None:
    """Each case gives the full cap (and when it frees) worked out by hand, or None for room."""
    found = full_cap(caps, reservations, now=NOW, journey="cart_abandonment")
    assert found == (None if expected is None else FullCap(*expected))


def test_full_cap_reason_names_the_cap() -> None:
    """A capped message's reason reads ``capped:`` and the cap's label."""
    assert cap_reason(DAY) == "capped:2/24h per customer"
    assert FullCap(WEEK_PER_JOURNEY, None).reason == "capped:1/7d per journey"


def test_caps_applicable_keeps_only_the_messages_category() -> None:
    """Of a marketing and a transactional cap, a marketing message is held to the first only, and
    a transactional one to the second only."""
    receipts = FrequencyCap(limit=10, window=timedelta(hours=1), category=Category.TRANSACTIONAL)
    assert applicable([DAY, receipts], Category.MARKETING) == [DAY]
    assert applicable([DAY, receipts], Category.TRANSACTIONAL) == [receipts]
