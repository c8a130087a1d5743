"""Frequency caps: how many messages a customer may get per category and window.

The counting is pure (``full_cap``); the atomic reservation around it lives in the send gate,
which holds the customer's row lock (PostgreSQL) or the database's write lock (SQLite) while it
counts and reserves, so that racing sends for one customer cannot both take the last place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from nudge.models import Category, FrequencyCap

DEFAULT_CAPS: tuple[FrequencyCap, ...] = (
    FrequencyCap(limit=2, window=timedelta(hours=24)),
    FrequencyCap(limit=5, window=timedelta(days=7)),
)
"""At most 2 marketing messages a day and 5 a week per customer, across every journey."""

CAPPED = "capped:"
"""Reason prefix of a message a full cap refused."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """A message that holds a place under the caps: when it took it, and its journey's name."""

    at: datetime
    journey: str


@dataclass(frozen=True, slots=True)
class FullCap:
    cap: FrequencyCap
    frees_at: datetime | None
    """When the oldest counted message leaves the window (never, for a cap of 0)."""

    @property
    def reason(self) -> str:
        return cap_reason(self.cap)


def cap_reason(cap: FrequencyCap) -> str:
    """``capped:2/24h per customer``: the reason a capped message records."""
    return f"{CAPPED}{cap.label}"


def applicable(caps: Iterable[FrequencyCap], category: Category) -> list[FrequencyCap]:
    return [cap for cap in caps if cap.category is category]


def full_cap(
    caps: Sequence[FrequencyCap],
    reservations: Iterable[Reservation],
    *,
    now: datetime,
    journey: str,
) -> FullCap | None:
    """The first cap with no room for one more message now, or None if every cap has room."""
    held = list(reservations)
    for cap in caps:
        since = now - cap.window
        times = sorted(r.at for r in held if r.at > since and (cap.per == "customer" or r.journey == journey))
        if len(times) >= cap.limit:
            frees_at = times[len(times) - cap.limit] + cap.window if cap.limit else None
            return FullCap(cap, frees_at)
    return None
