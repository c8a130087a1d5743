"""Quiet hours in the recipient's local time, including numbers that span several zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from nudge.quiet_hours import DEFAULT_WINDOWS, next_allowed

NUMBERS = {
    "+8613800138000": ["Asia/Shanghai"],
    "+14155550100": ["America/Los_Angeles"],
    "+12125550100": ["America/New_York"],
    "+18085550100": ["Pacific/Honolulu"],
    "+19075550100": ["America/Adak", "America/Anchorage"],
    "+447911123456": ["Europe/London"],
}


def _inside(moment: datetime, to: str) -> bool:
    window = DEFAULT_WINDOWS["86"] if to.startswith("+86") else DEFAULT_WINDOWS["1"]
    return all(window.contains(moment, ZoneInfo(zone)) for zone in NUMBERS[to])


def test_shanghai_evening_defers_to_eight_next_morning() -> None:
    """20:30 in Shanghai is quiet: the message waits for 08:00 the next day, Shanghai time."""
    now = datetime(2026, 11, 25, 20, 30, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)
    assert next_allowed(now, "+8613800138000") == datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    assert next_allowed(now - timedelta(hours=1), "+8613800138000") is None


def test_profile_zone_wins_over_the_number() -> None:
    """A US number whose owner lives in Shanghai (profile timezone) is judged in Shanghai time."""
    now = datetime(2026, 11, 25, 12, 0, tzinfo=ZoneInfo("America/Los_Angeles"))  # 04:00 in Shanghai
    assert next_allowed(now, "+14155550100") is None
    assert next_allowed(now, "+14155550100", profile_zone="Asia/Shanghai") is not None


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    to=st.sampled_from(sorted(NUMBERS)),
)
def test_no_marketing_in_quiet_hours_for_any_zone_and_time(moment: datetime, to: str) -> None:
    """Property: "now" is allowed only inside every zone's window; a deferral lands inside all of
    them, later than now, and within two days."""
    allowed_at = next_allowed(moment, to)
    if allowed_at is None:
        assert _inside(moment, to)
    else:
        assert not _inside(moment, to)
        assert moment < allowed_at <= moment + timedelta(days=2)
        assert _inside(allowed_at, to)
