"""Generated customer profiles for the audience tests, and an oracle that says, in plain Python and
independently of the SQL, which of them a definition selects."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.audiences import duration
from nudge.store import Assignment, Consent, Customer, EventRecord

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MISSING = object()
_TIME = TypeAdapter(datetime)


@dataclass
class Profile:
    id: str
    stage: str
    country: str | None
    timezone: str | None
    attributes: dict[str, Any]
    created_at: datetime
    consent: str | None = None
    """``granted``, ``withdrawn`` or None (no marketing row)."""
    events: list[datetime] = field(default_factory=list)
    variants: dict[str, str] = field(default_factory=dict)
    erased: bool = False


def profiles(count: int, *, seed: int = 13) -> list[Profile]:
    """``count`` profiles with every shape a field can take: missing, null, mistyped, boundary."""
    rng = random.Random(seed)
    made = []
    for index in range(count):
        attributes: dict[str, Any] = {}
        for key, choices in (
            ("language", ["zh", "en", "ja", None, MISSING]),
            ("tags", [MISSING, [], ["vip"], ["vip", "sale"], ["sale"], "vip", [1, "beta"], {"vip": 1}]),
            ("age", [MISSING, None, 17, 18, 30, 65, 17.5, "18", True]),
            ("vip", [MISSING, True, False, "true", 1]),
            ("plan", [MISSING, "gold", "silver", 12, "12"]),
        ):
            value = rng.choice(choices)
            if value is not MISSING:
                attributes[key] = value
        profile = Profile(
            id=f"p{rng.randrange(10**6):06d}-{index:04d}",
            stage=rng.choice(["new", "active", "vip", "churned"]),
            country=rng.choice(["CN", "HK", "US", None]),
            timezone=rng.choice(["Asia/Shanghai", "America/New_York", None]),
            attributes=attributes,
            created_at=NOW - timedelta(days=rng.uniform(0, 400)),
            consent=rng.choice(["granted", "withdrawn", None]),
            events=[NOW - timedelta(days=rng.uniform(0, 90)) for _ in range(rng.choice([0, 0, 1, 2, 3]))],
            variants={name: rng.choice("ab") for name in ("welcome", "other") if rng.random() < 0.5},
            erased=rng.random() < 0.05,
        )
        made.append(profile)
    made[0].events = [NOW - timedelta(days=30)]  # exactly on the edge of "within 30d"
    made[1].created_at = NOW - timedelta(days=30)
    return made


async def store(sessions: async_sessionmaker[AsyncSession], made: list[Profile]) -> None:
    """The profiles as rows, inserted in bulk: customers, consent (and a consent for another
    purpose, which marketing's ``unknown`` must not take for one), events and assignments."""
    customers, consents, events, assignments = [], [], [], []
    for p in made:
        customers.append(
            {
                "id": p.id,
                "lifecycle_stage": p.stage,
                "country": p.country,
                "timezone": p.timezone,
                "attributes": p.attributes,
                "created_at": p.created_at,
                "erased_at": NOW if p.erased else None,
                "last_active_at": max(p.events, default=None),  # what the gateway keeps
            }
        )
        if p.consent is not None or p.id.endswith("7"):
            purpose = "marketing" if p.consent is not None else "service"
            consents.append(
                {
                    "customer_id": p.id,
                    "channel": "sms",
                    "purpose": purpose,
                    "source": "t",
                    "text": "",
                    "granted": p.consent != "withdrawn",
                    "at": NOW,
                    "updated_at": NOW,
                }
            )
        events += [
            {
                "event_id": f"{p.id}-e{n}",
                "customer_id": p.id,
                "name": "x",
                "properties": {},
                "occurred_at": at,
                "received_at": at,
                "workflow_ids": [],
            }
            for n, at in enumerate(p.events)
        ]
        assignments += [
            {
                "experiment": experiment,
                "variant": variant,
                "customer_id": p.id,
                "workflow_id": "w",
                "journey": "j",
                "reason": "weights",
                "allocation": {},
                "at": NOW,
            }
            for experiment, variant in p.variants.items()
        ]
    async with sessions() as session:
        connection = await session.connection()
        for table, rows in (
            (Customer, customers),
            (Consent, consents),
            (EventRecord, events),
            (Assignment, assignments),
        ):
            if rows:
                await connection.execute(insert(table), rows)
        await session.commit()


def selects(profile: Profile, node: dict[str, Any]) -> bool:
    """Whether ``node`` selects ``profile`` (the oracle: no SQL, every rule spelled out)."""
    if profile.erased:
        return False
    return _holds(profile, node)


def _holds(p: Profile, node: dict[str, Any]) -> bool:
    if "all" in node:
        return all(_holds(p, child) for child in node["all"])
    if "any" in node:
        return any(_holds(p, child) for child in node["any"])
    if "not" in node:
        return not _holds(p, node["not"])
    name, op, value = node["field"], node["op"], node["value"]
    if op in ("ne", "not_in"):
        return not _holds(p, {"field": name, "op": {"ne": "eq", "not_in": "in"}[op], "value": value})
    values = value if op in ("in", "has_any", "has_all") else [value]
    if name in ("lifecycle_stage", "country", "timezone", "language"):
        have = {"lifecycle_stage": p.stage, "country": p.country, "timezone": p.timezone}.get(name)
        if name == "language":
            language = p.attributes.get("language")
            have = language if isinstance(language, str) else None
        return (have is not None) == value if op == "exists" else have is not None and have in values
    if name == "tags":
        tags = p.attributes.get("tags")
        strings = {t for t in tags if isinstance(t, str)} if isinstance(tags, list) else set()
        return all(v in strings for v in values) if op == "has_all" else any(v in strings for v in values)
    if name.startswith("attributes."):
        return _attribute(p.attributes.get(name.removeprefix("attributes."), MISSING), op, value, values)
    if name == "last_active":
        if op == "exists":
            return bool(p.events) == value
        recent = any(at >= NOW - duration(value) for at in p.events)
        return recent if op == "within" else not recent
    if name == "created_at":
        if op in ("within", "not_within"):
            return (p.created_at >= NOW - duration(value)) == (op == "within")
        at = _TIME.validate_python(value)
        return p.created_at < at if op == "before" else p.created_at > at
    if name == "consent":
        return (p.consent or "unknown") in values
    variant = p.variants.get(name.removeprefix("experiment."))
    return (variant is not None) == value if op == "exists" else variant in values


def _attribute(have: Any, op: str, value: Any, values: list[Any]) -> bool:
    number = have if isinstance(have, int | float) and not isinstance(have, bool) else None
    if op == "exists":
        return (have is not MISSING and have is not None) == value
    if op in ("lt", "le", "gt", "ge"):
        if number is None:
            return False
        return {"lt": number < value, "le": number <= value, "gt": number > value, "ge": number >= value}[op]

    def same(item: Any) -> bool:
        if isinstance(item, bool):
            return isinstance(have, bool) and have == item
        if isinstance(item, str):
            return isinstance(have, str) and have == item
        return number is not None and number == item

    return any(same(item) for item in values)
