"""The Segment spec's calls as Nudge's events and profiles, so that a CDP (Segment's or
RudderStack's webhook destination) feeds Nudge without code.

- ``track``: ``userId`` is the customer, ``event`` the event's name in snake case (``Order
  Completed`` is ``order_completed``), ``properties`` its properties, ``messageId`` its
  ``event_id`` (so a CDP's redelivery is a duplicate), ``timestamp`` when it occurred.
- ``page`` and ``screen``: the events ``page_viewed`` and ``screen_viewed``, with the page's
  ``name`` among the properties.
- ``identify``: ``traits`` merged into the profile: ``name`` (or ``firstName`` and
  ``lastName``), ``phone``, a two-letter ``country`` (or ``address.country``), the context's
  ``timezone``; every other trait goes into the attributes, with the context's ``locale``
  language as ``language`` unless a trait says otherwise.
- ``group`` and ``alias`` have no meaning here: answered ``skipped`` with the reason.

A call with only an ``anonymousId`` is refused: a journey belongs to a known customer.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from nudge.errors import InvalidInput
from nudge.models import IDENTIFIER_PATTERN
from nudge.store.customers import CustomerCreate

_NOT_NAME = re.compile(r"[^a-z0-9_.]+")
MAPPED_TRAITS = frozenset({"name", "firstName", "lastName", "phone"})


class Call(BaseModel):
    """What every Segment call carries (unknown keys, e.g. ``integrations``, are ignored)."""

    model_config = ConfigDict(extra="ignore")
    userId: str | None = Field(default=None, max_length=200)
    anonymousId: str | None = None
    messageId: str = Field(min_length=1, max_length=200, pattern=IDENTIFIER_PATTERN)
    timestamp: AwareDatetime | None = None
    originalTimestamp: AwareDatetime | None = None
    context: dict[str, Any] = Field(default_factory=dict)


class Track(Call):
    type: Literal["track"] = "track"
    event: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)


class Page(Call):
    type: Literal["page", "screen"] = "page"
    name: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class Identify(Call):
    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(default_factory=dict)


class Other(Call):
    type: Literal["group", "alias"]


class SegmentRefused(InvalidInput):
    """A call Nudge cannot take; ``field`` names where (``userId``, ``event``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def customer_of(call: Call) -> str:
    if not call.userId:
        raise SegmentRefused(
            "userId", "userId is required: Nudge keys journeys by a known customer, not an anonymousId"
        )
    return call.userId


def event_name(event: str) -> str:
    """``Order Completed`` -> ``order_completed``; refused when nothing of it is a name."""
    name = _NOT_NAME.sub("_", event.strip().lower()).strip("_")
    if not re.fullmatch(r"[a-z][a-z0-9_.]{0,99}", name):
        raise SegmentRefused("event", f"{event!r} makes no event name (a letter first, then a-z 0-9 _ .)")
    return name


def event_of(call: Track | Page) -> dict[str, Any]:
    """The body ``/v1/events`` would take for a track, page or screen call."""
    if isinstance(call, Track):
        name, properties = event_name(call.event), call.properties
    else:
        name = f"{call.type}_viewed"
        properties = {**call.properties, **({"name": call.name} if call.name else {})}
    occurred = call.timestamp or call.originalTimestamp
    return {
        "event_id": call.messageId,
        "customer_id": customer_of(call),
        "name": name,
        "properties": properties,
        "occurred_at": occurred.isoformat() if occurred else None,
    }


EVENT_FIELDS = {"event_id": "messageId", "customer_id": "userId", "name": "event", "occurred_at": "timestamp"}
"""Where a Nudge event's field came from in the Segment call (for a 422's ``loc``)."""


def profile_of(call: Identify, existing: dict[str, Any] | None) -> CustomerCreate:
    """The profile after ``call``'s traits are merged into ``existing`` (the stored one's fields)."""
    traits = call.traits
    profile = dict(existing or {"id": customer_of(call)})
    profile["id"] = customer_of(call)
    name = traits.get("name") or " ".join(
        str(part) for part in (traits.get("firstName"), traits.get("lastName")) if part
    )
    if name:
        profile["name"] = str(name)
    if traits.get("phone"):
        profile["phone"] = str(traits["phone"])
    address = traits.get("address")
    country = traits.get("country") or (address.get("country") if isinstance(address, dict) else None)
    mapped = MAPPED_TRAITS
    if isinstance(country, str) and re.fullmatch(r"[A-Za-z]{2}", country):
        profile["country"] = country.upper()
        mapped |= {"country"}
    timezone = call.context.get("timezone")
    if isinstance(timezone, str) and timezone:
        profile["timezone"] = timezone
    attributes = dict(profile.get("attributes") or {})
    locale = call.context.get("locale")
    if isinstance(locale, str) and re.match(r"[A-Za-z]{2}", locale) and "language" not in traits:
        attributes["language"] = locale[:2].lower()
    attributes |= {key: value for key, value in traits.items() if key not in mapped}
    profile["attributes"] = attributes
    return CustomerCreate.model_validate(profile)
