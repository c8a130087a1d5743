"""The broadcast's activities on the real store and the real carrier simulator: pages, batches
through the gate and the providers' batch APIs, sweeps of the deferred, expiry.

The oracle is the carrier's own ledger (what reached it, number by number) and the profiles the
test wrote; the batch reports are checked against both.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.broadcast import BroadcastActivities
from activities.broadcast import activities as broadcast_activities
from activities.compliance.pauses import PauseCache, Scope, Source, pause
from activities.compliance.registry import Registry
from activities.routing import Router, build_router
from nudge.broadcasts import (
    BatchReport,
    BatchRequest,
    BroadcastSpec,
    ExpireRequest,
    Outcome,
    PageRequest,
    broadcast_workflow_id,
)
from nudge.models import FrequencyCap
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.routes import RouteConfig, local_routes
from nudge.store import Customer, Message, StreamEvent, suppress
from nudge.store.audiences import Audience, AudienceMember
from tests.activities.conftest import SENDER
from tests.activities.test_send_stream import SINK
from tests.carrier import configure, ledger
from tests.customers import add_customers, new_customer
from tests.faults import FaultyTransport

START = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
DEADLINE = START + timedelta(days=2)


class Clock:
    """The activities' clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    """What a broadcast test stands on: the real store, the carrier simulator (its ledger the
    oracle), the routes to it and the activities' clock."""

    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    carrier: str
    router: Router
    clock: Clock

    async def people(self, n: int, *, country: str = "us", **fields: Any) -> dict[str, str]:
        """``n`` consenting customers ``c000``... with numbers; id -> number."""
        numbers = {f"c{i:03d}": phone(i, country) for i in range(n)}
        await add_customers(self.sessions, *(new_customer(cid, to, **fields) for cid, to in numbers.items()))
        return numbers

    async def broadcasting_to(
        self, members: Iterable[str], *, router: Router | None = None, **options: Any
    ) -> BroadcastActivities:
        """The activities (on ``router``, else the simulator's one route), with the audience
        ``everyone`` holding ``members``; ``options`` override the test defaults (``caps``)."""
        async with self.sessions() as session:
            session.add(Audience(name="everyone", kind="list", created_by="test", updated_by="test"))
            session.add_all([AudienceMember(audience="everyone", customer_id=i) for i in members])
            await session.commit()
        router = router or self.router
        registry = Registry(self.sessions, routes=[route.config for route in router.routes])
        await registry.seed()
        defaults: dict[str, Any] = {
            "quiet_hours": ALWAYS_OPEN,
            "caps": [],
            "link_base_url": "https://n.example/",
        }
        return BroadcastActivities(
            self.sessions, router, registry=registry, clock=self.clock, **(defaults | options)
        )

    def local_routes(self) -> Router:
        """The default local routes: Aliyun, then Tencent, then Aliyun backup for CN; Twilio for all."""
        return build_router(local_routes(self.carrier), self.http)

    async def pause_route(self, name: str) -> None:
        await pause(
            self.sessions, scope=Scope.ROUTE, value=name, reason="test", source=Source.MANUAL, by="test"
        )

    async def ledger(self) -> list[dict[str, Any]]:
        """What reached the carrier, in order."""
        return await ledger(self.http, self.carrier)

    async def reached(self) -> Counter[str]:
        """How many messages reached each number."""
        return Counter(entry["to"] for entry in await self.ledger())

    async def rows(self) -> list[Message]:
        async with self.sessions() as session:
            return list((await session.exec(select(Message))).all())


@pytest.fixture
def world(sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, carrier: str) -> World:
    router = build_router(
        [RouteConfig(name="sim", provider="simulator", base_url=carrier, signature=SENDER)],
        http,
        simulator_callback="http://127.0.0.1:9/v1/webhooks/simulator/status",
    )
    return World(sessions, http, carrier, router, Clock(START))


def once(numbers: Iterable[str]) -> Counter[str]:
    """Each of ``numbers`` reached exactly once."""
    return Counter(dict.fromkeys(numbers, 1))


def spec(**fields: Any) -> BroadcastSpec:
    values: dict[str, Any] = {
        "broadcast_id": "winter-sale",
        "audience": "everyone",
        "template": "welcome_back",
        "params": {"name": "friend", "start_url": "https://shop.example/new"},
        "batch_size": 7,
    }
    return BroadcastSpec(**(values | fields))


async def run(activity: Any, request: Any, *, attempt: int = 1) -> Any:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    return await env.run(activity, request)


async def run_pass(
    acts: BroadcastActivities, broadcast: BroadcastSpec, *, pass_no: int = 0, now: datetime | None = None
) -> list[BatchReport]:
    """Every batch of one pass, as the workflow runs them (pages of three batches)."""
    reports, after = [], None
    while True:
        page = await run(
            acts.broadcast_page,
            PageRequest(
                broadcast_id=broadcast.broadcast_id,
                audience=broadcast.audience,
                pass_no=pass_no,
                after=after,
                batches=3,
                batch_size=broadcast.batch_size,
                now=now,
            ),
        )
        for upto in page.bounds:
            reports.append(
                await run(acts.send_broadcast_batch, batch(broadcast, after, upto, pass_no=pass_no))
            )
            after = upto
        if page.done:
            return reports


def batch(broadcast: BroadcastSpec, after: str | None, upto: str, *, pass_no: int = 0) -> BatchRequest:
    return BatchRequest(
        spec=broadcast,
        workflow_id=broadcast_workflow_id(broadcast.broadcast_id),
        started_at=START,
        deadline=DEADLINE,
        pass_no=pass_no,
        after=after,
        upto=upto,
    )


def total(reports: list[BatchReport]) -> Counter[Outcome]:
    counts: Counter[Outcome] = Counter()
    for report in reports:
        counts.update(report.counts)
    return counts


def phone(i: int, country: str = "us") -> str:
    return f"+1415555{i:04d}" if country == "us" else f"+86139{i:08d}"


async def test_broadcast_sends_each_eligible_recipient_once_and_counts_everyone(world: World) -> None:
    """Every eligible member of the audience gets exactly one message; suppressed, unconsented
    and phoneless ones none; the reports count each recipient once, and running every batch
    again (a retried workflow) sends nothing more and reports the same."""
    numbers = await world.people(30)
    await add_customers(
        world.sessions, *(new_customer(f"n{i}", phone(100 + i)) for i in range(5)), consented=False
    )
    await add_customers(world.sessions, *(new_customer(f"p{i}", None) for i in range(3)))
    suppressed = [f"c{i:03d}" for i in range(0, 30, 5)]
    async with world.sessions() as session:
        for cid in suppressed:
            await suppress(session, numbers[cid], reason="reply:STOP", source="simulator")
        await session.commit()
    members = [*numbers, *(f"n{i}" for i in range(5)), *(f"p{i}" for i in range(3))]
    acts = await world.broadcasting_to(members)

    first = total(await run_pass(acts, spec()))
    got = await world.reached()
    assert got == once(numbers[c] for c in numbers if c not in suppressed)
    assert first == {Outcome.SENT: 24, Outcome.SUPPRESSED: 6, Outcome.NO_CONSENT: 5, Outcome.BLOCKED: 3}

    again = total(await run_pass(acts, spec()))
    assert again == first
    assert await world.reached() == got
    rows = await world.rows()
    assert len(rows) == len(members)
    assert {m.broadcast_id for m in rows} == {"winter-sale"}
    assert {m.journey for m in rows} == {"broadcast"}


async def test_lost_batch_answer_is_looked_up_number_by_number_before_any_resend(
    world: World, transport: FaultyTransport
) -> None:
    """Aliyun's SendBatchSms reached the carrier but its answer was lost: the retried batch asks
    QuerySendDetails for each number under the call's reference and records what it finds, so
    the carrier holds each message once (and the rows say submitted, with the call's BizId)."""
    router = world.local_routes()
    for route in router.routes:
        route.provider.lookup_grace = 0.0
    numbers = await world.people(12, country="cn")
    acts = await world.broadcasting_to(numbers, router=router)
    broadcast = spec(batch_size=20)
    transport.losing = {"/aliyun"}
    with pytest.raises(ApplicationError, match="not sent yet"):
        await run(acts.send_broadcast_batch, batch(broadcast, None, "c011"))
    transport.losing = set()
    assert len(await world.ledger()) == 12
    report = await run(acts.send_broadcast_batch, batch(broadcast, None, "c011"), attempt=2)
    assert report.counts == {Outcome.SENT: 12}
    assert await world.reached() == once(numbers.values())
    rows = await world.rows()
    assert {m.status for m in rows} == {"submitted"}
    assert len({m.batch_ref for m in rows}) == 1


async def test_aliyun_batch_call_carries_a_hundred_numbers(world: World) -> None:
    """Mainland recipients go out through SendBatchSms, up to 100 numbers a call: 150
    recipients in one batch are two calls (two BizIds) on the carrier's ledger."""
    numbers = await world.people(150, country="cn")
    acts = await world.broadcasting_to(numbers, router=world.local_routes())
    report = await run(acts.send_broadcast_batch, batch(spec(batch_size=150), None, "c149"))
    assert report.counts == {Outcome.SENT: 150}
    entries = await world.ledger()
    assert len(entries) == 150
    assert sorted(Counter(e["provider_id"] for e in entries).values()) == [50, 100]


async def test_an_open_breaker_sends_the_batch_on_the_next_route(world: World) -> None:
    """Aliyun's breaker is open: the mainland batch goes out on Tencent, the next route, and
    nothing reaches Aliyun."""
    router = world.local_routes()
    router.by_name["aliyun-cn"].breaker.trip("aliyun-cn down")
    numbers = await world.people(5, country="cn")
    acts = await world.broadcasting_to(numbers, router=router)
    report = await run(acts.send_broadcast_batch, batch(spec(), None, "c004"))
    assert report.counts == {Outcome.SENT: 5}
    assert {e["provider"] for e in await world.ledger()} == {"tencent"}
    assert {m.route for m in await world.rows()} == {"tencent-cn"}


async def test_paused_routes_pass_recipients_on_and_every_route_paused_makes_them_wait(
    world: World,
) -> None:
    """With Aliyun's route paused the batch goes out on Tencent; with every route paused its
    recipients wait for a resume (deferred ``paused``, due at the next look), and none is sent."""
    router = world.local_routes()
    numbers = await world.people(6, country="cn")
    acts = await world.broadcasting_to(numbers, router=router, pauses=PauseCache(world.sessions, ttl=0))
    await world.pause_route("aliyun-cn")
    report = await run(acts.send_broadcast_batch, batch(spec(), None, "c002"))
    assert report.counts == {Outcome.SENT: 3}
    assert {e["provider"] for e in await world.ledger()} == {"tencent"}

    for route in router.routes[1:]:
        await world.pause_route(route.name)
    report = await run(acts.send_broadcast_batch, batch(spec(), "c002", "c005"))
    assert report.counts == {Outcome.DEFERRED: 3}
    assert report.next_due == START + timedelta(minutes=10)
    assert len(await world.ledger()) == 3


async def test_capped_recipients_wait_and_a_later_pass_sends_them_when_the_cap_frees(world: World) -> None:
    """A customer whose daily cap is full waits (capped, due when it frees); the sweep's pass,
    run at that time, stamps and sends exactly those, and counts them once."""
    numbers = await world.people(10)
    async with world.sessions() as session:
        for cid in ("c001", "c004"):
            session.add(
                Message(
                    idempotency_key=f"earlier-{cid}",
                    workflow_id="journey:x",
                    journey="onboarding",
                    step="s",
                    customer_id=cid,
                    template="welcome_a",
                    category="marketing",
                    status="delivered",
                    cap_reserved_at=START - timedelta(hours=3),
                )
            )
        await session.commit()
    acts = await world.broadcasting_to(numbers, caps=[FrequencyCap(limit=1, window=timedelta(hours=24))])
    reports = await run_pass(acts, spec())
    assert total(reports) == {Outcome.SENT: 8, Outcome.CAPPED: 2}
    due = min(r.next_due for r in reports if r.next_due is not None)
    assert due == START + timedelta(hours=21)
    assert len(await world.ledger()) == 8

    world.clock.now = due - timedelta(minutes=1)
    assert total(await run_pass(acts, spec(), pass_no=1, now=world.clock.now)) == {}
    world.clock.now = due
    swept = total(await run_pass(acts, spec(), pass_no=2, now=world.clock.now))
    assert swept == {Outcome.SENT: 2}
    assert await world.reached() == once(numbers.values())


async def test_local_time_sends_each_zone_in_its_own_wave(world: World) -> None:
    """``local_time`` 10:00: Shanghai's recipients wait until 02:00 UTC, New York's until 15:00
    UTC; each later pass sends one zone's wave at its hour and no one else."""
    shanghai = {f"s{i}": phone(i, "cn") for i in range(4)}
    new_york = {f"y{i}": phone(i) for i in range(3)}
    await add_customers(
        world.sessions, *(new_customer(c, n, timezone="Asia/Shanghai") for c, n in shanghai.items())
    )
    await add_customers(
        world.sessions, *(new_customer(c, n, timezone="America/New_York") for c, n in new_york.items())
    )
    acts = await world.broadcasting_to([*shanghai, *new_york])
    broadcast = spec(local_time=time(10))
    first = await run_pass(acts, broadcast)
    assert total(first) == {Outcome.DEFERRED: 7}
    assert min(r.next_due for r in first if r.next_due) == datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    assert await world.ledger() == []

    world.clock.now = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    page = await run(
        acts.broadcast_page,
        PageRequest(broadcast_id="winter-sale", audience="everyone", pass_no=1, now=world.clock.now),
    )
    assert page.next_due == datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # New York's wave, still to come
    wave = await run_pass(acts, broadcast, pass_no=1, now=world.clock.now)
    assert total(wave) == {Outcome.SENT: 4}
    assert set(await world.reached()) == set(shanghai.values())

    world.clock.now = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    assert total(await run_pass(acts, broadcast, pass_no=2, now=world.clock.now)) == {Outcome.SENT: 3}
    assert await world.reached() == once([*shanghai.values(), *new_york.values()])


async def test_expiry_ends_the_waiting_recipients_and_counts_them_by_what_they_waited_for(
    world: World,
) -> None:
    """At the deadline every recipient still waiting is expired (never sent), counted as capped
    or deferred; nobody already decided is touched. The same expiry again (the retry of an
    attempt whose answer was lost) expires nothing more and still reports them, once."""
    numbers = await world.people(6, timezone="America/New_York")
    acts = await world.broadcasting_to(numbers)
    await run_pass(acts, spec(local_time=time(10)))
    report = await run(acts.expire_broadcast, ExpireRequest(broadcast_id="winter-sale", reason="deadline"))
    assert report.counts == {Outcome.DEFERRED: 6}
    assert await run(acts.expire_broadcast, ExpireRequest(broadcast_id="winter-sale"), attempt=2) == report
    cancel = ExpireRequest(broadcast_id="winter-sale", reason="cancelled")
    assert (await run(acts.expire_broadcast, cancel)).counts == {}  # none were expired for that
    assert {(m.status, m.reason) for m in await world.rows()} == {("blocked", "expired:deadline")}
    assert await world.ledger() == []


async def test_expiry_publishes_each_expired_recipient_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a stream sink, every expired row is published ``blocked`` with its reason, once (read
    back in chunks, here of four rows); a second expiry publishes nothing more."""
    monkeypatch.setattr(broadcast_activities, "EXPIRE_CHUNK", 4)
    numbers = await world.people(6, timezone="America/New_York")
    acts = await world.broadcasting_to(numbers, sinks=[SINK])
    await run_pass(acts, spec(local_time=time(10)))
    report = await run(acts.expire_broadcast, ExpireRequest(broadcast_id="winter-sale", reason="deadline"))
    assert report.counts == {Outcome.DEFERRED: 6}
    await run(acts.expire_broadcast, ExpireRequest(broadcast_id="winter-sale"))
    async with world.sessions() as session:
        events = (await session.exec(select(StreamEvent))).all()
    rows = {m.id: m.customer_id for m in await world.rows()}
    assert sorted((e.kind, e.body["message_id"], e.body["reason"]) for e in events) == sorted(
        ("blocked", message_id, "expired:deadline") for message_id in rows
    )
    assert sorted(e.customer_id for e in events) == sorted(numbers)


async def test_an_expiry_that_fails_part_way_expires_nothing_and_its_retry_counts_all(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while publishing (the fifth event) rolls the whole expiry back: its retry finds
    every recipient still waiting, and counts and publishes each once."""
    monkeypatch.setattr(broadcast_activities, "EXPIRE_CHUNK", 4)
    numbers = await world.people(6, timezone="America/New_York")
    acts = await world.broadcasting_to(numbers, sinks=[SINK])
    await run_pass(acts, spec(local_time=time(10)))
    published = broadcast_activities.publish
    calls = 0

    def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise ConnectionError("the database went away")
        return published(*args, **kwargs)

    monkeypatch.setattr(broadcast_activities, "publish", failing)
    with pytest.raises(ConnectionError):
        await run(acts.expire_broadcast, ExpireRequest(broadcast_id="winter-sale", reason="deadline"))
    assert {m.status for m in await world.rows()} == {"pending"}
    monkeypatch.setattr(broadcast_activities, "publish", published)
    report = await run(
        acts.expire_broadcast, ExpireRequest(broadcast_id="winter-sale", reason="deadline"), attempt=2
    )
    assert report.counts == {Outcome.DEFERRED: 6}
    async with world.sessions() as session:
        events = (await session.exec(select(StreamEvent))).all()
    assert sorted(e.body["message_id"] for e in events) == sorted(m.id for m in await world.rows())


async def test_throttled_calls_are_waited_out_and_reported(world: World) -> None:
    """A carrier that takes 20 sends a second answers the rest 429: the batch waits and sends
    them again, reports the seconds it waited, and still sends each recipient once."""
    await configure(world.http, world.carrier, rate_limit_tps=20)
    numbers = await world.people(40)
    acts = await world.broadcasting_to(numbers)
    report = await run(acts.send_broadcast_batch, batch(spec(batch_size=40), None, "c039"))
    assert report.counts == {Outcome.SENT: 40}
    assert report.throttled > 0
    assert await world.reached() == once(numbers.values())


async def test_unknown_audience_fails_for_good(world: World) -> None:
    """A broadcast to an audience that does not exist fails at once (no retry can cure it)."""
    acts = await world.broadcasting_to([])
    with pytest.raises(ApplicationError) as raised:
        await run(acts.broadcast_page, PageRequest(broadcast_id="b", audience="nobody"))
    assert raised.value.non_retryable
    assert raised.value.type == "UnknownAudience"


async def test_paging_covers_the_audience_with_no_gap_and_no_repeat(world: World) -> None:
    """The bounds of pass 0 split the audience into consecutive ranges that hold every member
    once, whatever the page and batch sizes."""
    ids = [f"m{i:04d}" for i in range(53)]
    async with world.sessions() as session:
        session.add_all([Customer(id=i, phone=None) for i in ids])
        await session.commit()
    acts = await world.broadcasting_to(ids)
    for batches, size in ((1, 1), (3, 7), (2, 53), (5, 100)):
        after, seen = None, []
        while True:
            page = await run(
                acts.broadcast_page,
                PageRequest(
                    broadcast_id="b", audience="everyone", after=after, batches=batches, batch_size=size
                ),
            )
            for upto in page.bounds:
                seen += await acts._audiences.members("everyone", after=after, upto=upto)
                after = upto
            if page.done:
                break
        assert seen == ids, (batches, size)


async def test_a_profile_that_does_not_fit_the_template_blocks_only_its_recipient(world: World) -> None:
    """A customer without a name, for a template that needs one and no fallback in the params, is
    blocked with the template's reason; the rest of the batch goes out."""
    numbers = await world.people(4)
    await add_customers(world.sessions, new_customer("anon", phone(50), name=None))
    acts = await world.broadcasting_to([*numbers, "anon"])
    report = await run(
        acts.send_broadcast_batch,
        batch(spec(params={"start_url": "https://shop.example/new"}), None, "c003"),
    )
    assert report.counts == {Outcome.SENT: 4, Outcome.BLOCKED: 1}
    (anon,) = [m for m in await world.rows() if m.customer_id == "anon"]
    assert anon.status == "blocked"
    assert anon.reason is not None and anon.reason.startswith("template_error: ")
    assert "name" in anon.reason
    assert set(await world.reached()) == set(numbers.values())
