"""Audiences on the real store (SQLite and PostgreSQL): each field and operator selects exactly the
customers a plain-Python oracle selects over the same generated profiles, and a broadcast's keyset
pages (``bounds`` then ``members``) reproduce the member list with no gap and no duplicate, also
while customers are being added."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.audiences import Audiences, UnknownAudience
from nudge.audiences import AudienceIn
from nudge.store import Customer, session_factory
from starter.api.services import audiences as service
from starter.api.services.audiences import UNKNOWN_SHOWN
from tests.store.audience_profiles import NOW, profiles, selects, store

C = dict[str, Any]


def cond(field: str, op: str, value: Any = True) -> C:
    return {"field": field, "op": op, "value": value}


CASES: list[C] = [
    cond("lifecycle_stage", "eq", "vip"),
    cond("lifecycle_stage", "ne", "vip"),
    cond("lifecycle_stage", "in", ["active", "vip"]),
    cond("lifecycle_stage", "not_in", ["active", "vip"]),
    cond("country", "eq", "CN"),
    cond("country", "ne", "CN"),
    cond("country", "in", ["CN", "HK"]),
    cond("country", "not_in", ["CN", "HK"]),
    cond("country", "exists", True),
    cond("country", "exists", False),
    cond("timezone", "eq", "Asia/Shanghai"),
    cond("timezone", "exists", False),
    cond("language", "eq", "zh"),
    cond("language", "ne", "zh"),
    cond("language", "in", ["en", "ja"]),
    cond("language", "exists", True),
    cond("language", "exists", False),
    cond("tags", "has", "vip"),
    cond("tags", "has", "beta"),
    cond("tags", "has_any", ["sale", "beta"]),
    cond("tags", "has_all", ["vip", "sale"]),
    cond("tags", "has_all", ["vip", "vip"]),
    cond("attributes.age", "gt", 17),
    cond("attributes.age", "ge", 18),
    cond("attributes.age", "lt", 18),
    cond("attributes.age", "le", 17.5),
    cond("attributes.age", "eq", 18),
    cond("attributes.age", "eq", "18"),
    cond("attributes.age", "ne", 18),
    cond("attributes.age", "exists", True),
    cond("attributes.age", "exists", False),
    cond("attributes.vip", "eq", True),
    cond("attributes.vip", "eq", False),
    cond("attributes.vip", "ne", True),
    cond("attributes.vip", "eq", 1),
    cond("attributes.vip", "eq", "true"),
    cond("attributes.plan", "in", ["gold", 12]),
    cond("attributes.plan", "not_in", ["gold", "12"]),
    cond("attributes.nothing", "exists", False),
    cond("last_active", "within", "30d"),
    cond("last_active", "not_within", "30d"),
    cond("last_active", "within", "36h"),
    cond("last_active", "exists", True),
    cond("last_active", "exists", False),
    cond("created_at", "within", "30d"),
    cond("created_at", "not_within", "2w"),
    cond("created_at", "before", "2025-01-01T00:00:00+08:00"),
    cond("created_at", "after", "2025-03-01T00:00:00Z"),
    cond("consent", "eq", "granted"),
    cond("consent", "eq", "withdrawn"),
    cond("consent", "eq", "unknown"),
    cond("consent", "ne", "granted"),
    cond("consent", "in", ["withdrawn", "unknown"]),
    cond("consent", "not_in", ["granted", "unknown"]),
    cond("experiment.welcome", "eq", "b"),
    cond("experiment.welcome", "ne", "b"),
    cond("experiment.welcome", "in", ["a", "b"]),
    cond("experiment.welcome", "exists", False),
    cond("experiment.nope", "exists", True),
    {"not": cond("country", "eq", "CN")},
    {"not": cond("attributes.age", "gt", 17)},
    {"not": cond("tags", "has", "vip")},
    {"not": {"not": cond("language", "eq", "en")}},
    {
        "all": [
            cond("lifecycle_stage", "in", ["active", "vip"]),
            cond("country", "eq", "CN"),
            cond("consent", "eq", "granted"),
        ]
    },
    {
        "any": [
            cond("tags", "has", "vip"),
            {"all": [cond("attributes.age", "ge", 18), {"not": cond("language", "exists")}]},
        ]
    },
    {
        "all": [
            cond("last_active", "within", "30d"),
            {"not": {"any": [cond("country", "eq", "US"), cond("experiment.other", "eq", "a")]}},
        ]
    },
]


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


async def page_through(audiences: Audiences, name: str, *, batches: int, batch_size: int) -> list[list[str]]:
    """Every batch of the audience, as a broadcast reads them: bounds, then each range's members."""
    pages, after, done = [], None, False
    while not done:
        bounds, done = await audiences.bounds(name, after=after, batches=batches, batch_size=batch_size)
        for upto in bounds:
            pages.append(await audiences.members(name, after=after, upto=upto))
            after = upto
        assert bounds or done
    return pages


async def test_each_field_and_op_selects_exactly_what_the_oracle_selects(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Every case over 400 profiles with missing, null, mistyped and boundary values: count, the
    member list and the sample agree with the oracle, erased customers never in."""
    made = profiles(400)
    await store(sessions, made)
    audiences = Audiences(sessions, clock=lambda: NOW)
    wrong = []
    for number, where in enumerate(CASES):
        name = f"case-{number}"
        await service.save(sessions, AudienceIn(name=name, where=where), by="test")
        expected = sorted(p.id for p in made if selects(p, where))
        members = [i for page in await page_through(audiences, name, batches=4, batch_size=50) for i in page]
        count = await audiences.count(name)
        if members != expected or count != len(expected):
            wrong.append((where, count, len(expected), sorted(set(members) ^ set(expected))[:5]))
    assert wrong == []
    # Degenerate cases would prove nothing: most select some but not all of the live profiles.
    sizes = [sum(selects(p, where) for p in made) for where in CASES]
    assert sum(0 < size < 380 for size in sizes) >= len(CASES) - 4, sizes


async def test_sample_is_the_first_members_profiles(sessions: async_sessionmaker[AsyncSession]) -> None:
    made = profiles(120)
    await store(sessions, made)
    where = cond("country", "eq", "CN")
    await service.save(sessions, AudienceIn(name="cn", where=where), by="test")
    sample = await Audiences(sessions, clock=lambda: NOW).sample("cn", size=5)
    assert [c.id for c in sample] == sorted(p.id for p in made if selects(p, where))[:5]
    assert all(isinstance(c, Customer) and c.country == "CN" for c in sample)


MOST = cond("lifecycle_stage", "ne", "churned")
FEW = {"all": [cond("lifecycle_stage", "eq", "vip"), cond("country", "eq", "CN")]}


@pytest.mark.parametrize(
    ("batches", "batch_size", "where"),
    [(1, 1, FEW), (5, 2, FEW), (3, 7, MOST), (8, 100, MOST), (2, 999, MOST), (1, 5000, MOST)],
)
async def test_pages_reproduce_the_member_list_exactly(
    sessions: async_sessionmaker[AsyncSession], batches: int, batch_size: int, where: C
) -> None:
    """Thousands of members (a couple of hundred for the tiniest batches), paged with each batch
    size: the pages joined are the member list, in order; every batch is full but the last."""
    made = profiles(3000, seed=5)
    await store(sessions, made)
    await service.save(sessions, AudienceIn(name="most", where=where), by="test")
    pages = await page_through(
        Audiences(sessions, clock=lambda: NOW), "most", batches=batches, batch_size=batch_size
    )
    expected = sorted(p.id for p in made if selects(p, where))
    assert [i for page in pages for i in page] == expected
    assert all(len(page) == batch_size for page in pages[:-1]) and 0 < len(pages[-1]) <= batch_size


async def test_pages_have_no_gap_or_duplicate_while_customers_are_added(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Customers added between pages, before and after the cursor: every member present at the
    start is read exactly once, nothing is read twice, and whoever else is read is a new member."""
    made = profiles(2000, seed=8)
    await store(sessions, made)
    await service.save(sessions, AudienceIn(name="all", where=cond("country", "exists", False)), by="test")
    await service.save(
        sessions, AudienceIn(name="none", where={"not": cond("lifecycle_stage", "exists", True)}), by="t"
    )
    audiences = Audiences(sessions, clock=lambda: NOW)
    rng = random.Random(3)
    read: list[str] = []
    added: list[str] = []
    after, done = None, False
    while not done:
        bounds, done = await audiences.bounds("all", after=after, batches=3, batch_size=40)
        for upto in bounds:
            read += await audiences.members("all", after=after, upto=upto)
            after = upto
        fresh = [f"p{rng.randrange(10**6):06d}-new{len(added) + i}" for i in range(5)]
        async with sessions() as session:
            session.add_all(Customer(id=i, country=None) for i in fresh)
            await session.commit()
        added += fresh
    initial = sorted(p.id for p in made if selects(p, cond("country", "exists", False)))
    assert len(read) == len(set(read)) and read == sorted(read)
    assert set(initial) <= set(read) and set(read) - set(initial) <= set(added)
    assert 0 < len(set(read) - set(initial)) < len(added)  # some landed ahead of the cursor, some behind
    assert await audiences.bounds("none", after=None, batches=2, batch_size=10) == ([], True)


async def test_list_audience_pages_its_customers_not_unknown_or_erased_ids(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A list uploaded in chunks (the first replacing what an earlier upload left): unknown and
    erased ids are counted, not stored; a chunk sent twice changes nothing; the pages are the live
    customers of the list, and a query audience takes no upload."""
    made = profiles(1500, seed=21)
    await store(sessions, made)
    await service.save(sessions, AudienceIn(name="vips", kind="list"), by="test")
    stale = next(p.id for p in made[1::2] if not p.erased)
    await service.upload(sessions, "vips", [stale], replace=True)
    chosen = [p.id for p in made[::2]]
    erased = {p.id for p in made if p.erased}
    first = await service.upload(sessions, "vips", chosen[:300], replace=True)
    rest_ids = [*chosen[300:], "nobody-1", "nobody-2", chosen[0]]
    rest = await service.upload(sessions, "vips", rest_ids, replace=False)
    again = await service.upload(sessions, "vips", rest_ids, replace=False)
    live = sorted(set(chosen) - erased)
    assert first.stored == 300 - len(erased & set(chosen[:300])) and first.members == first.stored
    assert (rest.stored, again.stored, again.members) == (len(live) - first.stored, 0, len(live))
    assert (rest.unknown, rest.duplicates) == (len(erased & set(chosen[300:])) + 2, 0)
    assert rest.unknown_ids == [i for i in rest_ids if i in erased or i.startswith("nobody")][:UNKNOWN_SHOWN]
    audiences = Audiences(sessions, clock=lambda: NOW)
    assert await audiences.count("vips") == len(live)
    pages = await page_through(audiences, "vips", batches=4, batch_size=33)
    assert [i for page in pages for i in page] == live
    assert await audiences.members("vips", after=live[9], upto=live[12]) == live[10:13]
    duplicated = await service.upload(sessions, "vips", [live[0], live[0]], replace=False)
    assert (duplicated.duplicates, duplicated.stored) == (1, 0)
    await service.save(sessions, AudienceIn(name="q", where=cond("country", "eq", "CN")), by="t")
    with pytest.raises(service.NotAList):
        await service.upload(sessions, "q", [live[0]], replace=False)


async def test_unknown_audience_is_refused_by_every_read(sessions: async_sessionmaker[AsyncSession]) -> None:
    audiences = Audiences(sessions)
    for read in (
        audiences.count("nope"),
        audiences.bounds("nope", after=None, batches=1, batch_size=1),
        audiences.members("nope", after=None, upto="z"),
        audiences.sample("nope", size=1),
    ):
        with pytest.raises(UnknownAudience, match="unknown audience 'nope'"):
            await read


@pytest.mark.parametrize(("members", "done"), [(12, True), (13, False), (11, True)])
async def test_bounds_says_done_exactly_when_no_member_follows(
    sessions: async_sessionmaker[AsyncSession], members: int, done: bool
) -> None:
    """A window of 3 batches of 4 over 11, 12 and 13 members: the last bound ends a shorter batch
    at the end, and `done` is true exactly when nothing follows it (no extra empty call needed)."""
    async with sessions() as session:
        session.add_all(Customer(id=f"m{i:02d}") for i in range(members))
        await session.commit()
    await service.save(sessions, AudienceIn(name="edge", where=cond("lifecycle_stage", "eq", "new")), by="t")
    bounds = await Audiences(sessions).bounds("edge", after=None, batches=3, batch_size=4)
    expected = ["m03", "m07", "m11"] if members >= 12 else ["m03", "m07", "m10"]
    assert bounds == (expected, done)
    assert await Audiences(sessions).bounds("edge", after="m11", batches=3, batch_size=4) == (
        (["m12"], True) if members == 13 else ([], True)
    )
