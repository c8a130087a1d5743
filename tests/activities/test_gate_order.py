"""The send gate's order of checks, on the real store and simulator: a message that several checks
would refuse is refused by the first of them in the documented order (template approval,
unreachable number, suppression, consent, pauses, quiet hours, caps), and only a message that
passes them all reaches the carrier. Every expectation is written out, not computed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance import consent
from activities.compliance.pauses import PauseCache, Scope, Source, pause
from activities.compliance.registry import Registry
from nudge.models import Category, FrequencyCap, SendDecision, SendRequest
from nudge.quiet_hours import DEFAULT_WINDOWS
from nudge.routes import RouteConfig
from nudge.store import SUPPRESS_ALL, ConsentIn, Message, suppress
from tests.activities.conftest import SENDER, GateFactory
from tests.activities.sends import run
from tests.carrier import ledger
from tests.customers import add_customers, new_customer

PHONE = "+8613800138000"
"""A mainland number: its quiet hours are 20:00 to 08:00 China time (UTC+8, no DST)."""
OPEN = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
"""10:00 in China."""
QUIET = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)
"""23:00 in China; the window opens at 08:00 there, 2026-06-02 00:00 UTC."""
OPENS = datetime(2026, 6, 2, 0, 0, tzinfo=UTC)

CART = ("cart_reminder", Category.MARKETING, {"name": "Ada", "cart_url": "https://shop.example.com/c"})
PAYMENT = ("payment_success", Category.TRANSACTIONAL, {"order_id": "o-1", "amount": "9.90"})
DRAFTS = {
    "cart_reminder": "${name}, still there: ${cart_url} Reply STOP to opt out",
    "payment_success": "Paid: order ${order_id}, ${amount}.",
}

EVERY_REFUSAL = frozenset({"draft", "unreachable", "no_consent", "paused", "quiet", "capped"})
AFTER_TEMPLATE = EVERY_REFUSAL - {"draft"}
AFTER_UNREACHABLE = frozenset({"opted_out", "no_consent", "paused", "quiet", "capped"})

# (conditions, template, journey's category) -> (decision, reason, stored status)
ORDER: list[tuple[frozenset[str], tuple[Any, ...], Category, tuple[SendDecision, str | None, str]]] = [
    # marketing: each check in turn, with every later check also failing
    (
        EVERY_REFUSAL,
        CART,
        Category.MARKETING,
        (SendDecision.BLOCKED, "template_not_approved:draft", "blocked"),
    ),
    (
        AFTER_TEMPLATE,
        CART,
        Category.MARKETING,
        (SendDecision.BLOCKED, "unreachable:provider:21211", "blocked"),
    ),
    (AFTER_UNREACHABLE, CART, Category.MARKETING, (SendDecision.SUPPRESSED, "suppressed", "blocked")),
    (
        frozenset({"no_consent", "paused", "quiet", "capped"}),
        CART,
        Category.MARKETING,
        (SendDecision.BLOCKED, "no_consent", "blocked"),
    ),
    (
        frozenset({"withdrawn", "paused", "quiet", "capped"}),
        CART,
        Category.MARKETING,
        (SendDecision.BLOCKED, "consent_withdrawn:support_email", "blocked"),
    ),
    (
        frozenset({"paused", "quiet", "capped"}),
        CART,
        Category.MARKETING,
        (SendDecision.BLOCKED, "paused:template=cart_reminder", "blocked"),
    ),
    (
        frozenset({"quiet", "capped"}),
        CART,
        Category.MARKETING,
        (SendDecision.DEFERRED, "deferred:quiet_hours", "pending"),
    ),
    (
        frozenset({"capped"}),
        CART,
        Category.MARKETING,
        (SendDecision.CAPPED, "capped:0/24h per customer", "blocked"),
    ),
    (frozenset(), CART, Category.MARKETING, (SendDecision.SENT, None, "submitted")),
    # transactional: only approval and reachability apply
    (
        EVERY_REFUSAL,
        PAYMENT,
        Category.TRANSACTIONAL,
        (SendDecision.BLOCKED, "template_not_approved:draft", "blocked"),
    ),
    (
        AFTER_TEMPLATE,
        PAYMENT,
        Category.TRANSACTIONAL,
        (SendDecision.BLOCKED, "unreachable:provider:21211", "blocked"),
    ),
    (AFTER_UNREACHABLE, PAYMENT, Category.TRANSACTIONAL, (SendDecision.SENT, None, "submitted")),
    # marketing when either the template or the journey is
    (AFTER_UNREACHABLE, PAYMENT, Category.MARKETING, (SendDecision.SUPPRESSED, "suppressed", "blocked")),
    (
        frozenset({"no_consent", "quiet"}),
        CART,
        Category.TRANSACTIONAL,
        (SendDecision.BLOCKED, "no_consent", "blocked"),
    ),
    (
        frozenset({"quiet"}),
        PAYMENT,
        Category.MARKETING,
        (SendDecision.DEFERRED, "deferred:quiet_hours", "pending"),
    ),
]
IDS = [
    "marketing-draft-first",
    "marketing-unreachable-second",
    "marketing-suppressed-third",
    "marketing-no-consent-fourth",
    "marketing-withdrawn-fourth",
    "marketing-paused-fifth",
    "marketing-quiet-sixth",
    "marketing-capped-last",
    "marketing-clear-sent",
    "transactional-draft-first",
    "transactional-unreachable-second",
    "transactional-ignores-the-rest",
    "payment-template-in-marketing-journey-suppressed",
    "marketing-template-in-transactional-journey-needs-consent",
    "payment-template-in-marketing-journey-quiet",
]


async def arrange(
    conditions: frozenset[str],
    template: str,
    *,
    sessions: async_sessionmaker[AsyncSession],
    registry: Registry,
) -> None:
    """The customer, their number and the scopes, as the conditions say."""
    consented = not conditions & {"no_consent", "withdrawn"}
    await add_customers(sessions, new_customer("c1", PHONE), consented=consented)
    async with sessions() as session:
        if "withdrawn" in conditions:
            await consent.record(session, "c1", "granted", ConsentIn(source="signup_form"))
            await consent.record(session, "c1", "withdrawn", ConsentIn(source="support_email"))
        if "unreachable" in conditions:
            await suppress(session, PHONE, reason="provider:21211", source="twilio", scope=SUPPRESS_ALL)
        if "opted_out" in conditions:
            await suppress(session, PHONE, reason="reply:STOP", source="simulator")
        await session.commit()
    if "paused" in conditions:
        await pause(sessions, scope=Scope.TEMPLATE, value=template, reason="t", source=Source.MANUAL, by="t")
    if "draft" in conditions:
        category = Category.MARKETING if template == "cart_reminder" else Category.TRANSACTIONAL
        await registry.put_template(template, body=DRAFTS[template], category=category)


@pytest.fixture
async def registry(sessions: async_sessionmaker[AsyncSession], carrier: str) -> Registry:
    route = RouteConfig(name="sim", provider="simulator", base_url=carrier, signature=SENDER)
    registry = Registry(sessions, routes=[route])
    await registry.seed()
    return registry


@pytest.mark.parametrize(("conditions", "template", "category", "expected"), ORDER, ids=IDS)
async def test_gate_order_first_refusing_check_decides(
    make_sends: GateFactory,
    registry: Registry,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
    conditions: frozenset[str],
    template: tuple[Any, ...],
    category: Category,
    expected: tuple[SendDecision, str | None, str],
) -> None:
    """The first check in the gate's order that refuses gives the decision and the stored reason;
    nothing reaches the carrier unless every check passes."""
    code, _, params = template
    await arrange(conditions, code, sessions=sessions, registry=registry)
    gate = make_sends(
        registry=registry,
        quiet_hours=DEFAULT_WINDOWS,
        clock=lambda: QUIET if "quiet" in conditions else OPEN,
        caps=[FrequencyCap(limit=0, window=timedelta(days=1))] if "capped" in conditions else [],
        pauses=PauseCache(sessions, ttl=0),
    )
    request = SendRequest(
        idempotency_key="wf-c1/run/1",
        workflow_id="wf-c1",
        journey="cart_abandonment" if category is Category.MARKETING else "payment_success",
        step="send:1",
        customer_id="c1",
        template=code,
        params=params,
        category=category,
    )

    result = await run(gate, request)

    decision, reason, status = expected
    assert (result.decision, result.reason) == (decision, reason)
    # The route it went (or will go) out on; a refused message went nowhere, though it was priced.
    assert result.route == ("sim" if decision in (SendDecision.SENT, SendDecision.DEFERRED) else None)
    async with sessions() as session:
        [row] = (await session.exec(select(Message))).all()
    assert (row.id, row.status, row.reason) == (result.message_id, status, reason)
    entries = await ledger(http, carrier)
    assert [e["client_ref"] for e in entries] == ([row.id] if decision is SendDecision.SENT else [])
    if decision is SendDecision.DEFERRED:
        assert result.retry_at == row.defer_until == OPENS
    else:
        assert result.retry_at is None
