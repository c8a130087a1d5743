"""Quiet hours in the recipient's local time, including numbers that span several zones."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nudge.quiet_hours import (
    ALWAYS_OPEN,
    DEFAULT_WINDOWS,
    Window,
    local_time_after,
    next_allowed,
    recipient_zone,
)

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


# ----- An oracle written apart from the product: fixed UTC offsets and allowed hours -------------
# The checks below never call zoneinfo or Window.contains: a recipient's local time is UTC plus
# the offset written here for the date, and the allowed hours come from the spec sheet (Aliyun's
# 08:00-20:00 for mainland China, the TCPA's 08:00-21:00 elsewhere).

ZONE_OFFSETS: dict[str, tuple[int, int]] = {
    # zone: (UTC offset in winter 2026, before 8 March; in summer 2026, 6 April to 20 October)
    "Asia/Shanghai": (8, 8),  # no DST
    "America/New_York": (-5, -4),  # DST from 8 March to 1 November 2026
    "America/Los_Angeles": (-8, -7),
    "Pacific/Honolulu": (-10, -10),  # no DST
    "America/Adak": (-10, -9),
    "America/Anchorage": (-9, -8),
    "Europe/London": (0, 1),  # BST from 29 March to 25 October 2026
    "Europe/Guernsey": (0, 1),
    "Europe/Isle_of_Man": (0, 1),
    "Europe/Jersey": (0, 1),
}
SEASONS = {
    "winter": (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 2, 25, tzinfo=UTC)),
    "summer": (datetime(2026, 4, 6, tzinfo=UTC), datetime(2026, 10, 18, tzinfo=UTC)),
}
"""Stretches with no DST change in any zone above, with two days to spare for a deferral."""
RECIPIENTS: dict[str, tuple[list[str], int, int]] = {
    # number: (every zone it may be in, first allowed local hour, first quiet local hour)
    "+8613800138000": (["Asia/Shanghai"], 8, 20),
    "+14155550100": (["America/Los_Angeles"], 8, 21),
    "+12125550100": (["America/New_York"], 8, 21),
    "+18085550100": (["Pacific/Honolulu"], 8, 21),
    "+19075550100": (["America/Adak", "America/Anchorage"], 8, 21),
    "+447911123456": (["Europe/Guernsey", "Europe/Isle_of_Man", "Europe/Jersey", "Europe/London"], 8, 21),
}


def _offset(zone: str, season: str) -> int:
    return ZONE_OFFSETS[zone][0 if season == "winter" else 1]


def _oracle_allowed(moment: datetime, to: str, season: str) -> bool:
    """Inside the allowed hours in every zone, by seconds since local midnight (offset arithmetic)."""
    zones, first, quiet = RECIPIENTS[to]
    for zone in zones:
        local_seconds = (moment.timestamp() + _offset(zone, season) * 3600) % 86400
        if not first * 3600 <= local_seconds < quiet * 3600:
            return False
    return True


def _oracle_next_allowed(moment: datetime, to: str, season: str) -> datetime | None:
    """None when allowed now; else the first whole UTC hour after ``moment`` that is allowed.

    Every offset is whole hours and every window opens on the hour, so the earliest allowed
    moment is a whole UTC hour.
    """
    if _oracle_allowed(moment, to, season):
        return None
    candidate = moment.replace(minute=0, second=0, microsecond=0)
    if candidate < moment:
        candidate += timedelta(hours=1)
    while not _oracle_allowed(candidate, to, season):
        candidate += timedelta(hours=1)
    return candidate


def _at_local(day: datetime, hour: int, minute: int, offset: int) -> datetime:
    """The UTC instant of ``hour:minute`` local time on ``day``'s date in a zone at ``offset``."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - timedelta(hours=offset)


BOUNDARY_CASES = [
    # (number, a date of the table, its offset that day, first allowed hour, first quiet hour)
    ("+8613800138000", datetime(2026, 1, 15), 8, 8, 20),
    ("+8613800138000", datetime(2026, 7, 15), 8, 8, 20),
    ("+12125550100", datetime(2026, 1, 15), -5, 8, 21),
    ("+12125550100", datetime(2026, 7, 15), -4, 8, 21),
    ("+12125550100", datetime(2026, 3, 6), -5, 8, 21),  # the Friday before DST starts
    ("+12125550100", datetime(2026, 3, 9), -4, 8, 21),  # the Monday after
    ("+14155550100", datetime(2026, 11, 25), -8, 8, 21),
    ("+18085550100", datetime(2026, 7, 15), -10, 8, 21),
    ("+447911123456", datetime(2026, 1, 15), 0, 8, 21),
    ("+447911123456", datetime(2026, 7, 15), 1, 8, 21),
]


@pytest.mark.parametrize(
    ("to", "day", "offset", "first", "quiet"),
    BOUNDARY_CASES,
    ids=[f"{to}-{day:%m%d}" for to, day, *_ in BOUNDARY_CASES],
)
def test_quiet_hours_boundaries_match_the_offset_table(
    to: str, day: datetime, offset: int, first: int, quiet: int
) -> None:
    """07:59 waits for 08:00 that day, 08:00 and the window's last minute go out, the quiet hour
    itself (21:00, 20:00 for +86) waits for 08:00 the next day: local time by fixed offset."""
    opens = _at_local(day, first, 0, offset)
    assert next_allowed(opens - timedelta(minutes=1), to) == opens
    assert next_allowed(opens - timedelta(microseconds=1), to) == opens
    assert next_allowed(opens, to) is None
    assert next_allowed(_at_local(day, quiet - 1, 59, offset), to) is None
    assert next_allowed(_at_local(day, quiet, 0, offset) - timedelta(microseconds=1), to) is None
    closes = _at_local(day, quiet, 0, offset)
    assert next_allowed(closes, to) == opens + timedelta(days=1)
    assert next_allowed(_at_local(day, 23, 30, offset), to) == opens + timedelta(days=1)


def test_quiet_hours_marketing_waits_across_the_dst_change() -> None:
    """New York at 21:00 on 7 March 2026 (UTC-5) waits for 08:00 on 8 March, which is UTC-4 by
    then: 12:00 UTC, not 13:00."""
    evening = datetime(2026, 3, 8, 2, 0, tzinfo=UTC)  # 21:00 EST on the 7th
    assert next_allowed(evening, "+12125550100") == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert next_allowed(datetime(2026, 3, 8, 12, 0, tzinfo=UTC), "+12125550100") is None
    assert next_allowed(datetime(2026, 3, 8, 11, 59, tzinfo=UTC), "+12125550100") is not None


def test_quiet_hours_shanghai_ignores_a_us_number_profile_zone() -> None:
    """+86 numbers are judged in Shanghai (UTC+8, no DST): 19:59 goes out, 20:00 waits, whatever
    the profile says."""
    day = datetime(2026, 7, 15)
    assert next_allowed(_at_local(day, 19, 59, 8), "+8613800138000", profile_zone="America/New_York") is None
    assert next_allowed(_at_local(day, 20, 0, 8), "+8613800138000", profile_zone="America/New_York") == (
        _at_local(day + timedelta(days=1), 8, 0, 8)
    )


@st.composite
def _instants(draw: st.DrawFn) -> tuple[datetime, str, str]:
    """An instant in a season with known offsets, often a minute either side of a window edge."""
    season = draw(st.sampled_from(sorted(SEASONS)))
    start, end = SEASONS[season]
    to = draw(st.sampled_from(sorted(RECIPIENTS)))
    day = start + timedelta(days=draw(st.integers(0, (end - start).days - 1)))
    if draw(st.booleans()):
        zones, first, quiet = RECIPIENTS[to]
        zone = draw(st.sampled_from(zones))
        hour = draw(st.sampled_from([first, quiet]))
        moment = day + timedelta(
            hours=hour - _offset(zone, season), minutes=draw(st.sampled_from([-1, 0, 1]))
        )
    else:
        moment = day + timedelta(seconds=draw(st.integers(0, 86399)))
    return moment, to, season


@settings(max_examples=400, deadline=None)
@given(case=_instants())
def test_quiet_hours_agree_with_the_offset_table(case: tuple[datetime, str, str]) -> None:
    """Property: next_allowed says "now" exactly when the offset table does, and otherwise defers
    to the same moment, which is 08:00 local in one of the recipient's zones."""
    moment, to, season = case
    expected = _oracle_next_allowed(moment, to, season)
    assert next_allowed(moment, to) == expected
    if expected is not None:
        zones = RECIPIENTS[to][0]
        assert any((expected + timedelta(hours=_offset(z, season))).time() == time(8) for z in zones)


# ----- Other windows, unparseable numbers, the caller's zone and zones with no common moment --------


def test_quiet_hours_unparseable_number_is_judged_by_the_default_window_in_utc() -> None:
    """A number phonenumbers cannot parse gets 08:00-21:00 UTC: 07:59 waits for 08:00, 21:00 for
    08:00 the next day."""
    day = datetime(2026, 1, 15, tzinfo=UTC)
    assert next_allowed(day + timedelta(hours=7, minutes=59), "not a number") == day + timedelta(hours=8)
    assert next_allowed(day + timedelta(hours=8), "not a number") is None
    assert next_allowed(day + timedelta(hours=20, minutes=59), "not a number") is None
    assert next_allowed(day + timedelta(hours=21), "not a number") == day + timedelta(days=1, hours=8)


def test_quiet_hours_custom_windows_apply_by_calling_code_then_star() -> None:
    """A window given for the country code wins; another country gets the "*" window; with no "*"
    either, the default 08:00-21:00 applies (London in January is UTC+0, New York UTC-5)."""
    windows = {"1": Window(start=time(10), end=time(18)), "*": Window(start=time(9), end=time(17))}
    day = datetime(2026, 1, 15, tzinfo=UTC)
    # New York, 09:30 local: outside its own 10:00-18:00, though inside the "*" window.
    assert next_allowed(day + timedelta(hours=14, minutes=30), "+12125550100", windows=windows) == (
        day + timedelta(hours=15)
    )
    # London, 08:30 local: outside "*" (09:00-17:00), though inside the default window.
    assert next_allowed(day + timedelta(hours=8, minutes=30), "+447911123456", windows=windows) == (
        day + timedelta(hours=9)
    )
    assert next_allowed(day + timedelta(hours=17), "+447911123456", windows=windows) == (
        day + timedelta(days=1, hours=9)
    )
    only_us = {"1": Window(start=time(10), end=time(18))}
    assert next_allowed(day + timedelta(hours=8, minutes=30), "+447911123456", windows=only_us) is None
    assert next_allowed(day + timedelta(hours=7), "+447911123456", windows=only_us) == day + timedelta(
        hours=8
    )


def test_quiet_hours_always_open_never_defers() -> None:
    """With the playground's ALWAYS_OPEN (start == end) a message goes out at any hour, anywhere."""
    night_in_shanghai = datetime(2026, 1, 15, 19, 0, tzinfo=UTC)  # 03:00 in Shanghai
    night_in_new_york = datetime(2026, 1, 15, 7, 0, tzinfo=UTC)  # 02:00 in New York
    assert next_allowed(night_in_shanghai, "+8613800138000", windows=ALWAYS_OPEN) is None
    assert next_allowed(night_in_new_york, "+12125550100", windows=ALWAYS_OPEN) is None


def test_quiet_hours_deferral_is_given_in_the_callers_zone() -> None:
    """The moment returned carries the zone of ``now``: 20:30 in Shanghai, asked in Shanghai time,
    defers to 08:00 Shanghai time the next day."""
    shanghai = ZoneInfo("Asia/Shanghai")
    allowed_at = next_allowed(datetime(2026, 11, 25, 20, 30, tzinfo=shanghai), "+8613800138000")
    assert allowed_at is not None
    assert allowed_at.tzinfo is shanghai
    assert (allowed_at.day, allowed_at.hour, allowed_at.minute) == (26, 8, 0)


def test_quiet_hours_zones_with_no_common_moment_go_by_the_latest_opening() -> None:
    """+1 907 may be Adak (UTC-10 in January) or Anchorage (UTC-9): with a half-hour window no
    moment is inside both, so the latest opening over the recipient's local today and the next two
    days is taken: 08:00 in Adak on 17 January (18:00 UTC), given in the caller's zone.

    At 05:00 UTC on the 16th it is still the 15th in Alaska, so the days count from the 15th."""
    anchorage = ZoneInfo("America/Anchorage")
    windows = {"1": Window(start=time(8), end=time(8, 30))}
    now = datetime(2026, 1, 16, 5, 0, tzinfo=UTC).astimezone(anchorage)  # 20:00 on the 15th there
    allowed_at = next_allowed(now, "+19075550100", windows=windows)
    assert allowed_at == datetime(2026, 1, 17, 18, 0, tzinfo=UTC)
    assert allowed_at is not None and allowed_at.tzinfo is anchorage


def test_quiet_hours_number_with_no_known_zone_is_judged_in_utc() -> None:
    """An international freephone number (+800) has no zone: it gets 08:00-21:00 UTC."""
    day = datetime(2026, 1, 15, tzinfo=UTC)
    assert next_allowed(day + timedelta(hours=7), "+80012345678") == day + timedelta(hours=8)
    assert next_allowed(day + timedelta(hours=8), "+80012345678") is None
    assert next_allowed(day + timedelta(hours=21), "+80012345678") == day + timedelta(days=1, hours=8)


@pytest.mark.parametrize(
    "profile_zone", ["America/Los_Angles", "Not/A_Zone", "../etc/passwd"], ids=["typo", "unknown", "path"]
)
def test_quiet_hours_unknown_profile_zone_falls_back_to_the_numbers_zone(profile_zone: str) -> None:
    """A profile zone that does not exist is ignored, not read as UTC: a Los Angeles number at
    02:00 there (10:00 UTC) waits for 08:00 Los Angeles time (16:00 UTC)."""
    now = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    assert next_allowed(now, "+14155550100", profile_zone=profile_zone) == datetime(
        2026, 1, 15, 16, 0, tzinfo=UTC
    )


# A broadcast's --local-time: the zone each recipient is taken to live in, and when its clock
# next reads the hour. Expected values worked out by hand from the zones' offsets.


@pytest.mark.parametrize(
    ("to", "profile_zone", "zone"),
    [
        ("+8613800138000", "America/New_York", "America/New_York"),  # the profile's zone first
        ("+8613800138000", "Mars/Olympus_Mons", "Asia/Shanghai"),  # a zone that does not exist: the number's
        ("+8613800138000", None, "Asia/Shanghai"),
        ("+14155550100", "", "America/Los_Angeles"),
        ("+4915112345678", None, "Europe/Berlin"),
        ("+80012345678", None, "UTC"),  # a number phonenumbers reads but places in no zone
        ("not a number", None, "UTC"),
    ],
)
def test_recipient_zone(to: str, profile_zone: str | None, zone: str) -> None:
    assert recipient_zone(to, profile_zone=profile_zone).key == zone


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


SHANGHAI, LOS_ANGELES, NEW_YORK = (
    ZoneInfo(z) for z in ("Asia/Shanghai", "America/Los_Angeles", "America/New_York")
)


@pytest.mark.parametrize(
    ("start", "at", "zone", "expected"),
    [
        # 09:00 in Shanghai: 10:00 comes the same day, at 02:00 UTC.
        (utc(2026, 12, 3, 1, 0), time(10), SHANGHAI, utc(2026, 12, 3, 2, 0)),
        # 11:00 in Shanghai: 10:00 has passed, so the next day's.
        (utc(2026, 12, 3, 3, 0), time(10), SHANGHAI, utc(2026, 12, 4, 2, 0)),
        # At 10:00 exactly: now.
        (utc(2026, 12, 3, 2, 0), time(10), SHANGHAI, utc(2026, 12, 3, 2, 0)),
        # 12:00 in Los Angeles (UTC-8): the next day's 10:00 is 18:00 UTC.
        (utc(2026, 12, 3, 20, 0), time(10), LOS_ANGELES, utc(2026, 12, 4, 18, 0)),
        # 17:00 in Los Angeles, already the next day in UTC: 20:00 comes the same local day.
        (utc(2026, 12, 4, 1, 0), time(20), LOS_ANGELES, utc(2026, 12, 4, 4, 0)),
        # New York skips 02:00-03:00 on 2027-03-14: 02:30 is read as 03:30 EDT, 07:30 UTC.
        (utc(2027, 3, 14, 5, 0), time(2, 30), NEW_YORK, utc(2027, 3, 14, 7, 30)),
    ],
)
def test_local_time_after(start: datetime, at: time, zone: ZoneInfo, expected: datetime) -> None:
    found = local_time_after(start, at, zone)
    assert found == expected
    assert found.tzinfo is start.tzinfo, "given back in the start's zone"


def test_local_time_after_keeps_the_starts_zone() -> None:
    start = datetime(2026, 12, 3, 9, 0, tzinfo=SHANGHAI)
    found = local_time_after(start, time(10), SHANGHAI)
    assert (found, found.tzinfo) == (datetime(2026, 12, 3, 10, 0, tzinfo=SHANGHAI), SHANGHAI)
