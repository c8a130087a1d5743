"""Quiet hours: when a marketing message may reach a recipient, in the recipient's local time.

Defaults follow the strictest rules on the spec sheet: mainland China 08:00-20:00 Asia/Shanghai
(Aliyun forbids 20:00-08:00), North America 08:00-21:00 local time (TCPA), and 08:00-21:00 local
time elsewhere. The local zone comes from the customer's profile or, failing that, from the number
(``phonenumbers``); a number that spans several zones must be inside the window in all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone
from pydantic import BaseModel, ConfigDict

from nudge.phone import parse_number


class Window(BaseModel):
    """Marketing may go out from ``start`` (inclusive) to ``end`` (exclusive), local time."""

    model_config = ConfigDict(frozen=True)

    start: time = time(8)
    end: time = time(21)
    zone: str | None = None
    """A fixed zone for the whole country (e.g. Asia/Shanghai); None means the recipient's own."""

    def contains(self, moment: datetime, zone: ZoneInfo) -> bool:
        """Whether ``moment`` falls in the window in ``zone``; ``start == end`` means all day."""
        if self.start == self.end:
            return True
        local = moment.astimezone(zone).time()
        return self.start <= local < self.end


DEFAULT_WINDOWS: dict[str, Window] = {
    "86": Window(start=time(8), end=time(20), zone="Asia/Shanghai"),
    "1": Window(start=time(8), end=time(21)),
    "*": Window(start=time(8), end=time(21)),
}
"""Country calling code -> window; ``*`` is every other country."""

ALWAYS_OPEN: dict[str, Window] = {"*": Window(start=time(0), end=time(0))}
"""No quiet hours: for the playground (``make run``, ``make demo``), whose delays are seconds."""


@lru_cache(maxsize=1024)
def known_zone(name: str) -> bool:
    """Is ``name`` an IANA time zone (``Asia/Shanghai``)? Cached: a file or a batch repeats a few."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # `Asia` is a folder; a long name, too long
        return False
    return True


def _zones(number: phonenumbers.PhoneNumber, window: Window, profile_zone: str | None) -> list[ZoneInfo]:
    names: tuple[str, ...]
    if window.zone:
        names = (window.zone,)
    elif profile_zone and known_zone(profile_zone):
        # A profile zone that does not exist (a typo) says nothing: the number's zones judge,
        # rather than UTC, which would let marketing out at night in the Americas.
        names = (profile_zone,)
    else:
        names = tuple(z for z in pn_timezone.time_zones_for_number(number) if z != "Etc/Unknown")
    zones = []
    for name in names:
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
    return zones or [ZoneInfo("UTC")]


def next_allowed(
    now: datetime,
    to: str,
    *,
    profile_zone: str | None = None,
    windows: Mapping[str, Window] = DEFAULT_WINDOWS,
) -> datetime | None:
    """None when a marketing message to ``to`` may go out at ``now``; else the earliest moment
    (to the minute) when it may, in every zone the recipient may be in."""
    number = parse_number(to)  # None: the provider will refuse it; judged by the default window, in UTC
    code = str(number.country_code) if number is not None else "*"
    window = windows.get(code) or windows.get("*") or Window()
    zones = _zones(number, window, profile_zone) if number is not None else [ZoneInfo("UTC")]

    def allowed(moment: datetime) -> bool:
        return all(window.contains(moment, zone) for zone in zones)

    if allowed(now):
        return None
    # The window opens at some zone's local start time; try each over the next two days.
    candidates = sorted(
        datetime.combine((now.astimezone(zone) + timedelta(days=day)).date(), window.start, tzinfo=zone)
        for zone in zones
        for day in range(3)
    )
    for candidate in candidates:
        if candidate > now and allowed(candidate):
            return candidate.astimezone(now.tzinfo)
    # No moment suits every zone at once (the zones are too far apart): go by the latest opening.
    return candidates[-1].astimezone(now.tzinfo)


def recipient_zone(to: str, *, profile_zone: str | None = None) -> ZoneInfo:
    """The one zone a recipient is taken to live in: the profile's (when it exists), else the
    number's first zone, else UTC (what ``--local-time`` delivers by)."""
    if profile_zone and known_zone(profile_zone):
        return ZoneInfo(profile_zone)
    number = parse_number(to)
    if number is None:
        return ZoneInfo("UTC")
    for name in pn_timezone.time_zones_for_number(number):
        if name != "Etc/Unknown" and known_zone(name):
            return ZoneInfo(name)
    return ZoneInfo("UTC")


def local_time_after(start: datetime, at: time, zone: ZoneInfo) -> datetime:
    """The first moment at or after ``start`` when the clock in ``zone`` reads ``at`` (a
    broadcast's ``--local-time``: each zone's wave). A time that a DST change skips is read
    as the moment after the gap, as ``zoneinfo`` does."""
    local = start.astimezone(zone)
    for day in range(3):
        candidate = datetime.combine(local.date() + timedelta(days=day), at, tzinfo=zone)
        if candidate >= start:
            return candidate.astimezone(start.tzinfo)
    raise AssertionError("unreachable: a local time recurs within two days")  # pragma: no cover
