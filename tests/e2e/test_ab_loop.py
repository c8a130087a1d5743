"""End to end, issue 12: an A/B journey on the real stack, judged against the carrier's own record.

A few hundred new customers sign up; Onboarding splits them between two welcome texts; the
simulated customers click one text far more often than the other; the test posts purchases for
some of them, favouring the same text. Then the funnel API, ``nudge report`` and the counts the
test makes itself (from the simulator's ledger and from what it posted) must agree field by
field, the sequential test must name the favoured text, and a second stack, where the split is a
bandit, must move most of its traffic to that text as the clicks arrive.

The fixed run (``ab_run``) is module-scoped and finished before any test reads it, so further
checks of the same run (the dashboard's) can take ``ab_run`` and read ``ab_run.stack``.

The numbers are chosen so that a run fails by chance less than once in a million (see
``test_the_planted_rates_decide_the_verdict_almost_surely``, which computes it): the verdict
needs every variant's minimum sample (sized here by ``NUDGE_EXPERIMENT_MIN_LIFT=1``, a doubling:
the largest lift the setting takes) and an always-valid p-value under 0.05, whose mixture
(tau = 0.02) is tuned to small differences, so it needs a wide gap over a few hundred customers.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from nudge import stats
from nudge.experiments import Metric, verdict
from nudge.routes import local_routes
from nudge.templates import builtin_templates
from starter.demo import DEMO_OVERRIDES
from starter.stack import Stack
from tests.e2e.conftest import running_stack
from tests.e2e.test_cart_journey import _cli_env, _nudge
from tests.polling import wait_until
from workflows import Onboarding

pytestmark = pytest.mark.e2e

EXPERIMENT = "welcome_copy"
COPY = {"a": "Welcome to Nudge", "b": "ships free"}
"""A phrase of each variant's English text (``welcome_a``, ``welcome_b``), found in no other."""
CLICK_RATES = {"a": 0.30, "b": 0.85}
"""The simulated customers' click probability per text: b's copy draws far more clicks."""
CLICK_DELAY_MS = 4000
"""A person reads, then clicks. The gateway takes a click within 1 s of the delivery it knows of
for a scanner's; a receipt that beats the send's answer is applied when the answer is recorded,
later than the carrier sent it, so the delay leaves seconds of room for a busy worker."""
CONVERTS_AFTER_CLICK = {"a": 0.20, "b": 0.50}
"""The test's customers buy with this probability after a click, per variant..."""
CONVERTS_WITHOUT_CLICK = 0.02
"""...and with this one without (the conversion is still credited to the welcome)."""
BUYS_AGAIN = 0.25
"""A buyer orders a second time with this probability: ``conversions`` counts both, ``converted`` one."""
CUSTOMERS = 400
MIN_LIFT = 1.0
"""``NUDGE_EXPERIMENT_MIN_LIFT`` of the fixed run: the verdict is sized to see a doubling."""
FLAKE = 1e-7
"""The chance of a false failure each statistical assertion is allowed."""

BANDIT_CUSTOMERS = 300
WAVES = 15
WAVE_EVERY = 3.0
"""Seconds between waves of sign-ups: the bandit's allocation (recomputed at most every 5 s)
refreshes about ten times while clicks come in."""

DEADLINE = 180.0
"""The longest any wait here gives up after: generous, so that a machine 3x slower passes."""


def _variant_of(body: str) -> str | None:
    found = [v for v, phrase in COPY.items() if phrase in body]
    assert len(found) <= 1, body
    return found[0] if found else None


@dataclass
class Oracle:
    """One variant's funnel as the test counts it, from the simulator's ledger and its own orders."""

    customers: set[str] = field(default_factory=set)
    delivered: int = 0
    clicked: set[str] = field(default_factory=set)
    segments: int = 0
    cost: float = 0.0
    currencies: set[str] = field(default_factory=set)
    converted: set[str] = field(default_factory=set)
    conversions: int = 0
    revenue: float = 0.0


@dataclass
class Run:
    """A finished run: the stack it ran on, what the test drove and what the carrier recorded."""

    stack: Stack
    tag: str
    phones: dict[str, str]
    """Customer id -> number."""
    welcomes: dict[str, dict[str, Any]]
    """Customer id -> the ledger entry of their welcome message."""
    variants: dict[str, str]
    """Customer id -> the variant their welcome's text shows."""
    orders: list[dict[str, Any]] = field(default_factory=list)
    """The ``order_paid`` events the test posted."""
    oracle: dict[str, Oracle] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds each part of the run took."""

    @property
    def clicked(self) -> set[str]:
        return {cid for cid, entry in self.welcomes.items() if entry["clicked"]}


def _customers(tag: str, prefix: str, n: int) -> list[dict[str, Any]]:
    """New customers with a mainland mobile number and marketing consent."""
    return [
        {
            "id": f"ab-{tag}-{i:03d}",
            "name": f"Cu{i:03d}",
            "phone": f"+86{prefix}{i:07d}",
            "lifecycle_stage": "new",
            "consent": {"source": "e2e_signup"},
        }
        for i in range(n)
    ]


LIMITS = httpx.Limits(keepalive_expiry=1.0)
"""uvicorn closes a connection idle for 5 s, httpx's default expiry: a request sent on one just then
fails (ReadError). Between waves the clients idle for seconds; they drop connections well before."""


def _gateway(stack: Stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=60, limits=LIMITS
    )


def _simulator(stack: Stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.simulator_url, timeout=60, limits=LIMITS)


async def _create(gw: httpx.AsyncClient, customers: list[dict[str, Any]]) -> dict[str, str]:
    r = await gw.post("/v1/customers:batch", json={"customers": customers})
    assert r.status_code == 200, r.text
    return {c["id"]: c["phone"] for c in customers}


async def _post_events(gw: httpx.AsyncClient, events: list[dict[str, Any]], *, concurrency: int = 12) -> None:
    """Post every event (a few at a time, as services do); each must be accepted."""
    gate = asyncio.Semaphore(concurrency)

    async def post(event: dict[str, Any]) -> None:
        async with gate:
            r = await gw.post("/v1/events", json={"event_id": uuid.uuid4().hex, **event})
            assert r.status_code == 202, r.text

    await asyncio.gather(*(post(e) for e in events))


async def _ledger(sim: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await sim.get("/_sim/ledger")
    r.raise_for_status()
    entries: list[dict[str, Any]] = r.json()
    return entries


async def _funnel(gw: httpx.AsyncClient, *group_by: str) -> list[dict[str, Any]]:
    r = await gw.get("/v1/reports/funnel", params={"group_by": list(group_by)})
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()
    return rows


def _row(rows: list[dict[str, Any]], dimension: str, value: str) -> dict[str, Any]:
    matching = [r for r in rows if r["group"] == {dimension: value}]
    assert len(matching) == 1, (value, rows)
    return matching[0]


async def _welcomes(sim: httpx.AsyncClient, phones: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Customer id -> their welcome's ledger entry (each customer gets one: fail on a second)."""
    by_phone = {phone: cid for cid, phone in phones.items()}
    out: dict[str, dict[str, Any]] = {}
    for entry in await _ledger(sim):
        cid = by_phone.get(entry["to"])
        if cid is not None and _variant_of(entry["body"]) is not None:
            assert cid not in out, f"{cid} got two welcomes"
            out[cid] = entry
    return out


async def _all_delivered(
    sim: httpx.AsyncClient, gw: httpx.AsyncClient, phones: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Wait until every customer's welcome is in the ledger, delivered, its receipt taken by the
    gateway and applied there; then until the clicks the simulator does have all landed."""
    welcomes: dict[str, dict[str, Any]] = {}

    async def delivered() -> bool:
        nonlocal welcomes
        welcomes = await _welcomes(sim, phones)
        if len(welcomes) < len(phones):
            return False
        if not all(e["status"] == "delivered" and e["receipts_posted"] >= 1 for e in welcomes.values()):
            return False
        row = _row(await _funnel(gw, "journey"), "journey", Onboarding.name)
        return bool(row["delivered"] == len(phones))

    await wait_until(
        delivered, what="every welcome delivered and its receipt applied", timeout=DEADLINE, every=0.5
    )
    # A simulated customer clicks CLICK_DELAY_MS after the receipt was taken; give that time, then
    # wait until the gateway's count of persons' clicks equals the ledger's, twice in a row.
    last = max(datetime.fromisoformat(e["reported_at"]) for e in welcomes.values())
    seen: list[tuple[int, int]] = []

    async def settled() -> bool:
        nonlocal welcomes
        if (datetime.now(UTC) - last).total_seconds() < CLICK_DELAY_MS / 1000 + 2:
            return False
        welcomes = await _welcomes(sim, phones)
        clicked = sum(1 for e in welcomes.values() if e["clicked"])
        counted = _row(await _funnel(gw, "journey"), "journey", Onboarding.name)["clicked"]
        seen.append((clicked, counted))
        return len(seen) >= 2 and seen[-1] == seen[-2] and clicked == counted

    try:
        await wait_until(settled, what="the clicks landed", timeout=DEADLINE, every=1.0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; clicks (ledger, gateway), last seen: {seen[-3:]}") from None
    return welcomes


ROUTE_PRICES = {
    (route.provider, route.access_key_id or route.account_sid or route.secret_id): (
        route.cost_per_segment,
        route.currency,
    )
    for route in local_routes("http://sim")
}
"""(provider, account) -> the local route's price per segment and currency: how the test prices a
ledger entry."""


def _count(run: Run) -> dict[str, Oracle]:
    """Each variant's funnel from the ledger (sent, delivered, clicked, segments and their price)
    and from the orders the test posted (converted, conversions, revenue)."""
    oracle = {v: Oracle() for v in COPY}
    for cid, entry in run.welcomes.items():
        o = oracle[run.variants[cid]]
        o.customers.add(cid)
        o.delivered += entry["status"] == "delivered"
        if entry["clicked"]:
            o.clicked.add(cid)
        o.segments += entry["segments"]
        price, currency = ROUTE_PRICES[(entry["provider"], entry["account"])]
        o.cost += entry["segments"] * price
        o.currencies.add(currency)
    for order in run.orders:
        o = oracle[run.variants[order["customer_id"]]]
        o.converted.add(order["customer_id"])
        o.conversions += 1
        o.revenue += order["properties"]["amount"]
    return oracle


def _orders(run: Run) -> list[dict[str, Any]]:
    """Who buys, decided by the test (seeded, in customer order): more of b's clickers than a's."""
    rng = random.Random(12)
    orders = []
    for cid in sorted(run.welcomes):
        variant, clicked = run.variants[cid], bool(run.welcomes[cid]["clicked"])
        if rng.random() >= (CONVERTS_AFTER_CLICK[variant] if clicked else CONVERTS_WITHOUT_CLICK):
            continue
        for n in range(2 if rng.random() < BUYS_AGAIN else 1):
            amount = round(rng.uniform(20, 300), 2)
            orders.append(
                {
                    "customer_id": cid,
                    "name": "order_paid",
                    "properties": {"order_id": f"{cid}-o{n}", "amount": amount, "currency": "CNY"},
                }
            )
    return orders


async def _cli_json(stack: Stack, *args: str) -> Any:
    """``nudge ARGS --json`` in a process of its own, as a user runs it; its output parsed."""
    done = await _nudge(_cli_env(stack), *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _overrides(**onboarding: Any) -> str:
    """The e2e journey overrides (shrunk delays), with Onboarding's config on top."""
    return json.dumps({**DEMO_OVERRIDES, Onboarding.name: {**DEMO_OVERRIDES[Onboarding.name], **onboarding}})


async def _sim_config(stack: Stack) -> None:
    async with _simulator(stack) as sim:
        r = await sim.post(
            "/_sim/config",
            json={
                "click_rates_by_text": {COPY[v]: rate for v, rate in CLICK_RATES.items()},
                "click_delay_ms": CLICK_DELAY_MS,
            },
        )
        assert r.status_code == 200, r.text


# ----- the fixed run -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ab_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The real stack, its verdicts sized to see a doubling (the run plants far more)."""
    with running_stack(
        tmp_path_factory.mktemp("ab"),
        NUDGE_EXPERIMENT_MIN_LIFT=str(MIN_LIFT),
        NUDGE_JOURNEY_OVERRIDES=_overrides(),
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def ab_run(ab_stack: Stack) -> AsyncIterator[Run]:
    """CUSTOMERS new customers sign up at once; every welcome delivered and clicked as the simulated
    customers choose; then the test's purchases posted, and their confirmations delivered."""
    started = time.monotonic()
    stack, tag = ab_stack, uuid.uuid4().hex[:6]
    await _sim_config(stack)
    async with (
        _gateway(stack) as gw,
        _simulator(stack) as sim,
    ):
        marks = [time.monotonic()]
        phones = await _create(gw, _customers(tag, "1380", CUSTOMERS))
        await _post_events(gw, [{"customer_id": cid, "name": "signed_up"} for cid in phones])
        marks.append(time.monotonic())
        welcomes = await _all_delivered(sim, gw, phones)
        marks.append(time.monotonic())
        run = Run(
            stack=stack,
            tag=tag,
            phones=phones,
            welcomes=welcomes,
            variants={cid: v for cid, e in welcomes.items() if (v := _variant_of(e["body"])) is not None},
        )
        run.orders = _orders(run)
        numbers = set(phones.values())
        # Second orders come once the first ones' confirmations are delivered: the customer's last
        # message is then PaymentSuccess's, which has no goal, and the welcome must still get the credit.
        first = [o for o in run.orders if o["properties"]["order_id"].endswith("-o0")]
        again = [o for o in run.orders if o not in first]
        for batch, posted in ((first, len(first)), (again, len(run.orders))):
            await _post_events(gw, batch)

            async def confirmed(posted: int = posted) -> bool:
                receipts = [
                    e for e in await _ledger(sim) if e["to"] in numbers and "Payment received" in e["body"]
                ]
                if len(receipts) < posted or any(e["status"] != "delivered" for e in receipts):
                    return False
                row = _row(await _funnel(gw, "journey"), "journey", "payment_success")
                return bool(row["delivered"] == posted)

            await wait_until(
                confirmed, what="the orders' confirmations delivered", timeout=DEADLINE, every=0.5
            )
        marks.append(time.monotonic())
    run.oracle = _count(run)
    run.seconds = time.monotonic() - started
    run.phases = {
        name: round(end - start, 1)
        for name, start, end in zip(
            ("sign-ups", "welcomes and clicks", "orders"), marks, marks[1:], strict=False
        )
    }
    print(f"\nfixed run: {CUSTOMERS} customers, {len(run.orders)} orders, {run.seconds:.0f} s {run.phases}")
    for v, o in run.oracle.items():
        print(
            f"  {v}: exposed {len(o.customers)}, delivered {o.delivered}, clicked {len(o.clicked)}, "
            f"converted {len(o.converted)} ({o.conversions} orders, {o.revenue:.2f} CNY)"
        )
    yield run


FUNNEL_COUNTS = ("messages", "sent", "delivered", "clicked", "converted", "conversions", "segments")


def _expected_funnel_row(o: Oracle) -> dict[str, Any]:
    """The funnel row of a variant, every field, as the oracle has it."""
    sent, conversions = len(o.customers), o.conversions
    (currency,) = o.currencies
    return {
        "group": None,  # compared on its own
        "entered": None,
        "messages": sent,
        "pending": 0,
        "blocked": 0,
        "blocked_by": {},
        "failed": 0,
        "sent": sent,
        "delivered": o.delivered,
        "undelivered": sent - o.delivered,
        "clicked": len(o.clicked),
        "converted": len(o.converted),
        "conversions": conversions,
        "opted_out": 0,
        "complained": 0,
        "segments": o.segments,
        "cost": pytest.approx(o.cost),
        "currency": currency,
        "revenue": pytest.approx(o.revenue),
        "revenue_currency": "CNY" if conversions else None,
        "cost_per_conversion": pytest.approx(o.cost / conversions) if conversions else None,
        "revenue_per_conversion": pytest.approx(o.revenue / conversions) if conversions else None,
        "rates": {
            "delivery": pytest.approx(o.delivered / sent),
            "click": pytest.approx(len(o.clicked) / sent),
            "conversion": pytest.approx(len(o.converted) / sent),
            "opt_out": 0.0,
            "complaint": 0.0,
        },
    }


async def test_funnel_by_variant_agrees_with_the_cli_and_with_the_carrier(ab_run: Run) -> None:
    """The funnel API's rows per variant equal ``nudge report --by variant --json``'s, and each
    variant's row equals, field by field, what the test counted from the simulator's ledger (sent,
    delivered, clicked, segments, cost) and from the orders it posted (converted, revenue)."""
    stack = ab_run.stack
    async with _gateway(stack) as gw:
        api = await _funnel(gw, "variant")
    cli = await _cli_json(stack, "report", "--by", "variant")
    assert cli == api
    for v, o in ab_run.oracle.items():
        row = _row(api, "variant", f"{EXPERIMENT}:{v}")
        expected = _expected_funnel_row(o)
        for name, value in expected.items():  # a field added later is checked by the CLI's equality only
            if name != "group":
                assert row[name] == value, (v, name, row[name], value)
    # The rest of the messages are the orders' confirmations, outside the experiment.
    (other,) = [r for r in api if r["group"]["variant"] is None]
    assert (other["sent"], other["delivered"], other["converted"]) == (len(ab_run.orders),) * 2 + (0,)
    assert len(api) == 3


async def test_funnel_by_journey_agrees_with_the_cli_and_with_the_carrier(ab_run: Run) -> None:
    """Per journey: Onboarding's entries are the customers who signed up, its counts the two
    variants' together; PaymentSuccess sent one confirmation per order and converted nothing."""
    stack = ab_run.stack
    async with _gateway(stack) as gw:
        api = await _funnel(gw, "journey")
    assert await _cli_json(stack, "report", "--by", "journey") == api
    onboarding = _row(api, "journey", Onboarding.name)
    oracle = ab_run.oracle.values()
    assert {name: onboarding[name] for name in FUNNEL_COUNTS} == {
        "messages": sum(len(o.customers) for o in oracle),
        "sent": sum(len(o.customers) for o in oracle),
        "delivered": sum(o.delivered for o in oracle),
        "clicked": sum(len(o.clicked) for o in oracle),
        "converted": sum(len(o.converted) for o in oracle),
        "conversions": sum(o.conversions for o in oracle),
        "segments": sum(o.segments for o in oracle),
    }
    assert onboarding["entered"] == CUSTOMERS
    assert onboarding["revenue"] == pytest.approx(sum(o["properties"]["amount"] for o in ab_run.orders))
    payments = _row(api, "journey", "payment_success")
    assert (payments["entered"], payments["sent"], payments["delivered"], payments["converted"]) == (
        len(ab_run.orders),
        len(ab_run.orders),
        len(ab_run.orders),
        0,
    )


async def test_sequential_test_names_the_favoured_copy(ab_run: Run) -> None:
    """The verdict on clicks names b, conclusive by the sequential test, P(best) > 0.95; its counts
    are the ledger's (customers exposed, customers who clicked); the CLI shows the same report;
    the verdict on conversions counts the customers the test made buy."""
    stack = ab_run.stack
    async with _gateway(stack) as gw:
        r = await gw.get(f"/v1/experiments/{EXPERIMENT}", params={"metric": "clicked"})
        assert r.status_code == 200, r.text
        report = r.json()
        r = await gw.get(f"/v1/experiments/{EXPERIMENT}", params={"metric": "converted"})
        assert r.status_code == 200, r.text
        converted = r.json()["verdict"]
    cli = await _cli_json(stack, "experiments", "show", EXPERIMENT, "--metric", "clicked")
    assert cli == report
    assert report["experiment"]["mode"] == "fixed"
    judged = report["verdict"]
    figures = {f["variant"]: f for f in judged["variants"]}
    for v, o in ab_run.oracle.items():
        assert (figures[v]["exposures"], figures[v]["successes"]) == (len(o.customers), len(o.clicked)), v
    conversions = {f["variant"]: (f["exposures"], f["successes"]) for f in converted["variants"]}
    assert conversions == {v: (len(o.customers), len(o.converted)) for v, o in ab_run.oracle.items()}
    (duel,) = judged["comparisons"]
    print(
        f"\nverdict: {judged['summary']}; sequential p {duel['always_valid_p']:.2e}, "
        f"fixed p {duel['p_value']:.2e}, lift {duel['lift']:+.0%}; on conversions: {converted['summary']}"
    )
    assert judged["leader"] == "b", judged["summary"]
    assert judged["needs_more"] == 0, judged["summary"]
    assert (duel["variant"], duel["against"]) == ("b", "a")
    assert duel["always_valid_p"] < 0.05
    assert figures["b"]["probability_best"] > 0.95
    assert judged["conclusive"], judged["summary"]
    assert judged["summary"].startswith("b beats a on clicks: ") and judged["summary"].endswith(
        ", conclusive"
    )


def _even_split_bound(n: int, flake: float = FLAKE) -> int:
    """The smallest d with P(|X - n/2| > d) < ``flake`` for X ~ Binomial(n, 1/2)."""
    pmf = [math.comb(n, k) / 2**n for k in range(n + 1)]
    d = 0
    while sum(p for k, p in enumerate(pmf) if abs(k - n / 2) > d) >= flake:
        d += 1
    return d


async def test_exposures_split_about_evenly(ab_run: Run) -> None:
    """Every customer was exposed once, and the 50/50 split gave each variant a share within the
    binomial bound a fair split breaks once in ten million runs."""
    exposed = {v: len(o.customers) for v, o in ab_run.oracle.items()}
    assert sum(exposed.values()) == CUSTOMERS
    bound = _even_split_bound(CUSTOMERS)
    assert all(abs(n - CUSTOMERS / 2) <= bound for n in exposed.values()), (exposed, bound)


def test_the_planted_rates_decide_the_verdict_almost_surely() -> None:
    """The chance that the fixed run's verdict is not "b, conclusive", over every split and every
    click count the planted rates can give (exactly, by summing the binomial probabilities, with
    the verdict's own code), is below one in a million: the e2e assertion cannot flake."""
    half = [math.comb(CUSTOMERS, k) / 2**CUSTOMERS for k in range(CUSTOMERS + 1)]
    failure = 0.0
    for n_a, weight in enumerate(half):
        n_b = CUSTOMERS - n_a
        if weight < 1e-12 or min(n_a, n_b) == 0:
            failure += weight
            continue
        # Click counts beyond these are rarer than 1e-15 together: counted as failures.
        pa = _likely(n_a, CLICK_RATES["a"])
        pb = _likely(n_b, CLICK_RATES["b"])
        failure += weight * (1 - sum(pa.values()) * sum(pb.values()))
        for k_a, w_a in pa.items():
            for k_b, w_b in pb.items():
                if not _b_wins({"a": (k_a, n_a), "b": (k_b, n_b)}):
                    failure += weight * w_a * w_b
    assert failure < 1e-6, failure


def _likely(n: int, p: float) -> dict[int, float]:
    """Binomial(n, p)'s probabilities, leaving out the outcomes less likely than 1e-17 each."""
    pmf = {k: math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)}
    return {k: w for k, w in pmf.items() if w >= 1e-17}


def _b_wins(counts: dict[str, tuple[int, int]]) -> bool:
    """The verdict's conclusion on ``counts`` read once (more looks only lower the sequential p),
    without P(best), which the sequential test's margin implies: checked once at the edge."""
    (k_a, n_a), (k_b, n_b) = counts["a"], counts["b"]
    pooled = (k_a + k_b) / (n_a + n_b)
    baseline = k_a / n_a if k_a else pooled
    needed = stats.sample_size(min(max(baseline, 0.01), 0.99 / (1 + MIN_LIFT)), MIN_LIFT)
    if needed > min(n_a, n_b) or k_b / n_b <= k_a / n_a:
        return False
    return stats.log_mixture_likelihood_ratio(k_a, n_a, k_b, n_b, tau=0.02) > -math.log(0.05)


# ----- the bandit run ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bandit_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second stack, where Onboarding's welcome split is a bandit."""
    with running_stack(
        tmp_path_factory.mktemp("bandit"), NUDGE_JOURNEY_OVERRIDES=_overrides(welcome_bandit=True)
    ) as running:
        yield running


@dataclass
class BanditRun:
    run: Run
    assignments: list[dict[str, Any]]
    """The experiment's assignment rows, in the order they were made."""
    report: dict[str, Any]


@pytest.fixture(scope="module")
async def bandit_run(bandit_stack: Stack) -> AsyncIterator[BanditRun]:
    """BANDIT_CUSTOMERS sign up in WAVES waves, WAVE_EVERY s apart (and each only once the wave
    before it was delivered: on a slow machine the waves wait for the sends, not pile up)."""
    started = time.monotonic()
    stack, tag = bandit_stack, uuid.uuid4().hex[:6]
    await _sim_config(stack)
    async with (
        _gateway(stack) as gw,
        _simulator(stack) as sim,
    ):
        phones = await _create(gw, _customers(tag, "1390", BANDIT_CUSTOMERS))
        ids = list(phones)
        size = math.ceil(len(ids) / WAVES)
        for start in range(0, len(ids), size):
            wave = ids[start : start + size]
            tick = time.monotonic()
            await _post_events(gw, [{"customer_id": cid, "name": "signed_up"} for cid in wave])
            sent_to = {phones[cid] for cid in wave}

            async def wave_delivered(sent_to: set[str] = sent_to) -> bool:
                entries = [e for e in await _ledger(sim) if e["to"] in sent_to]
                return len(entries) == len(sent_to) and all(e["status"] == "delivered" for e in entries)

            await wait_until(
                wave_delivered, what="the wave's welcomes delivered", timeout=DEADLINE, every=0.25
            )
            # Pacing, not waiting for a result: the next wave comes WAVE_EVERY after this one.
            await asyncio.sleep(max(0.0, tick + WAVE_EVERY - time.monotonic()))
        welcomes = await _all_delivered(sim, gw, phones)
        r = await gw.get(f"/v1/experiments/{EXPERIMENT}")
        assert r.status_code == 200, r.text
        report = r.json()
    run = Run(
        stack=stack,
        tag=tag,
        phones=phones,
        welcomes=welcomes,
        variants={cid: v for cid, e in welcomes.items() if (v := _variant_of(e["body"])) is not None},
    )
    run.seconds = time.monotonic() - started
    with sqlite3.connect(f"file:{stack.state_dir / 'nudge.db'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT customer_id, variant, reason, allocation FROM assignment"
            " WHERE experiment = ? ORDER BY id",
            (EXPERIMENT,),
        ).fetchall()
    assignments = [dict(row) | {"allocation": json.loads(row["allocation"])} for row in rows]
    shares = Counter(a["variant"] for a in assignments)
    last = assignments[-len(assignments) // 3 :]
    clicks = Counter(run.variants[c] for c in run.clicked)
    print(
        f"\nbandit run: {BANDIT_CUSTOMERS} customers in {run.seconds:.0f} s: {dict(shares)}, last third "
        f"{dict(Counter(a['variant'] for a in last))}, clicks {dict(clicks)}, "
        f"allocations {[round(a['allocation']['b'], 3) for a in _distinct_allocations(assignments)]}, "
        f"verdict: {report['verdict']['summary']}"
    )
    yield BanditRun(run=run, assignments=assignments, report=report)


def _distinct_allocations(assignments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each allocation the bandit placed customers with, once, in the order it came into force."""
    out: list[dict[str, Any]] = []
    for a in assignments:
        if not out or a["allocation"] != out[-1]["allocation"]:
            out.append(a)
    return out


async def test_bandit_moves_traffic_to_the_favoured_copy(bandit_run: BanditRun) -> None:
    """Every customer was placed by the bandit (reason ``bandit``, its allocation kept) in the variant
    whose text the carrier delivered them; it started at 50/50, with no data, refreshed its
    allocation as clicks arrived, and by the end gave b most of the traffic: b got more customers
    than a overall, a clear majority of the last third, and the allocation in force is b's.

    Simulated with the planted click rates (160,000 runs, clicks landing 4.5-7 s after the
    assignment, or 6-15 s on a slow machine), no run broke these bounds; the worst gave b 62 % of
    all customers (bound: 55 %) and 76 % of the last third (bound: 70 %)."""
    run, assignments = bandit_run.run, bandit_run.assignments
    assert bandit_run.report["experiment"]["mode"] == "bandit"
    assert len(assignments) == BANDIT_CUSTOMERS
    assert {a["customer_id"]: a["variant"] for a in assignments} == run.variants
    assert {a["reason"] for a in assignments} == {"bandit"}
    for a in assignments:
        assert set(a["allocation"]) == {"a", "b"} and sum(a["allocation"].values()) == pytest.approx(1.0)
    assert assignments[0]["allocation"] == pytest.approx({"a": 0.5, "b": 0.5})
    assert len(_distinct_allocations(assignments)) >= 4, "the allocation was not refreshed as clicks came"
    shares = Counter(a["variant"] for a in assignments)
    assert shares["b"] > 0.55 * BANDIT_CUSTOMERS, shares
    last = Counter(a["variant"] for a in assignments[-(BANDIT_CUSTOMERS // 3) :])
    assert last["b"] >= 0.7 * sum(last.values()), last
    assert bandit_run.report["allocation"]["b"] >= 0.8, bandit_run.report["allocation"]
    assert bandit_run.report["verdict"]["leader"] == "b", bandit_run.report["verdict"]["summary"]


def test_verdict_code_matches_the_power_computation_at_its_edge() -> None:
    """``_b_wins`` (the power computation's shortcut) agrees with the verdict itself at the edge of
    conclusiveness, where P(best) is also above 0.95."""
    n = CUSTOMERS // 2
    k_a = round(CLICK_RATES["a"] * n)
    edge = next(k_b for k_b in range(k_a, n + 1) if _b_wins({"a": (k_a, n), "b": (k_b, n)}))
    for k_b in (edge - 1, edge):
        counts = {"a": (k_a, n), "b": (k_b, n)}
        judged = verdict(counts, [counts], metric=Metric.CLICKED, min_lift=MIN_LIFT)
        assert judged.conclusive == _b_wins(counts) == (k_b == edge)
    judged = verdict({"a": (k_a, n), "b": (edge, n)}, [], metric=Metric.CLICKED, min_lift=MIN_LIFT)
    assert {f.variant: f.probability_best for f in judged.variants}["b"] > 0.95


def test_the_planted_phrases_pick_out_each_welcome() -> None:
    """Each phrase the simulator keys its click rates on is in its own welcome's English text only."""
    english = {t.code: t.body for t in builtin_templates() if t.language in ("", "en")}
    for v, phrase in COPY.items():
        assert [code for code, body in english.items() if phrase in body] == [f"welcome_{v}"]


async def test_the_dashboard_shows_the_runs_figures(ab_run: Run) -> None:
    """In a real Chromium: the funnel page's rows per journey and variant are the API's, the
    experiments page gives the API's verdict in words, the overview's totals are the API's; a
    screenshot of each page goes to test-artifacts/ab/ (docs/dashboard.png is the overview's)."""
    from tests.browser import artifacts, chromium

    stack, shots = ab_run.stack, artifacts("ab")
    async with _gateway(stack) as gw:
        funnel = await _funnel(gw, "journey", "variant")
        total = (await _funnel(gw))[0]
        report = (await gw.get(f"/v1/experiments/{EXPERIMENT}")).json()
    async with chromium(stack.gateway_url) as (page, elsewhere):
        await page.goto("/dashboard")
        await page.fill("#key", stack.api_key)
        await page.click("#login")
        await page.wait_for_selector("canvas[data-chart=chart-rates][data-drawn=true]")
        assert await page.locator('#totals [data-field="sent"]').inner_text() == str(total["sent"])
        assert await page.locator('#totals [data-field="rates.click"]').inner_text() == (
            f"{100 * total['rates']['click']:.1f} %"
        )
        await page.screenshot(path=shots / "overview.png", full_page=True)

        await page.click("#nav-funnel")
        await page.wait_for_selector("canvas[data-chart=chart-funnel][data-drawn=true]")
        for row in funnel:
            group = " / ".join(value or "(none)" for value in row["group"].values())
            cells = page.locator(f'#funnel tr[data-group="{group}"]')
            for name in ("sent", "delivered", "clicked", "converted"):
                assert await cells.locator(f'[data-field="{name}"]').inner_text() == str(row[name]), (
                    group,
                    name,
                )
        await page.screenshot(path=shots / "funnel.png", full_page=True)

        await page.click("#nav-experiments")
        summary = page.locator(f'tr[data-experiment="{EXPERIMENT}"] .summary')
        assert await summary.inner_text() == report["verdict"]["summary"]
        await page.click(f'tr[data-experiment="{EXPERIMENT}"] a')
        await page.wait_for_selector("canvas[data-chart=chart-variants][data-drawn=true]")
        assert await page.locator("#verdict").inner_text() == report["verdict"]["summary"]
        for figures in report["verdict"]["variants"]:
            row = page.locator(f'#variants tr[data-variant="{figures["variant"]}"]')
            assert await row.locator('[data-field="exposures"]').inner_text() == str(figures["exposures"])
            assert await row.locator('[data-field="successes"]').inner_text() == str(figures["successes"])
        await page.screenshot(path=shots / "experiment.png", full_page=True)
        print(f"\ndashboard: {report['verdict']['summary']}; screenshots in {shots}")
    assert elsewhere == []
