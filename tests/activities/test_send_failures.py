"""A provider's refusal or an unreachable provider, as the store records it, and what the retry does.

A permanent refusal leaves the failed message, its audit row, the suppression (marketing only for
an opt-out, everything for a dead number) and the complaint it counts. A call that never reached
the provider is marked so, and its retry goes through the gate again with the recipient as they
are now. The real gate on the real store, against the simulator's Twilio API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.exceptions import ApplicationError

from activities.compliance import consent
from activities.routing import build_router
from activities.send import SendActivities
from nudge.models import Category, MessageStatus, SendDecision, SendRequest
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.routes import local_routes
from nudge.store import Complaint, ConsentIn, Customer, Message, MessageStatusChange, Suppression, suppress
from tests.activities.sends import run
from tests.carrier import ledger
from tests.customers import add_customers, new_customer
from tests.faults import FaultyTransport

US = "+14155550100"


@pytest.fixture
async def gate(
    sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, carrier: str
) -> SendActivities:
    """The gate on the local routes (a US number goes out on twilio-intl), without caps."""
    await add_customers(sessions, new_customer("us", US, name="Bo"))
    router = build_router(local_routes(carrier), http)
    return SendActivities(
        sessions, router, link_base_url="https://n.example", quiet_hours=ALWAYS_OPEN, caps=[]
    )


def send(n: int, category: Category) -> SendRequest:
    marketing = category is Category.MARKETING
    return SendRequest(
        idempotency_key=f"wf-us-{n}/run/1",
        workflow_id=f"wf-us-{n}",
        journey="cart_abandonment" if marketing else "payment_success",
        step="send:1",
        customer_id="us",
        template="cart_reminder" if marketing else "payment_success",
        params={"name": "Bo", "cart_url": "https://s.example/c"}
        if marketing
        else {"order_id": "o-1", "amount": "9.90"},
        category=category,
    )


async def faults(http: httpx.AsyncClient, carrier: str, *entries: dict[str, Any]) -> None:
    response = await http.post(f"{carrier}/_sim/config", json={"faults": list(entries)})
    assert response.status_code == 200


async def all_rows(sessions: async_sessionmaker[AsyncSession], model: Any) -> list[Any]:
    async with sessions() as session:
        return list((await session.exec(select(model))).all())


@pytest.mark.parametrize(
    ("code", "suppressed_scope", "complaints", "confirmation"),
    [
        ("21610", None, 1, SendDecision.SENT),
        ("21211", "all", 0, SendDecision.BLOCKED),
        ("21617", "none", 0, SendDecision.SENT),
    ],
    ids=["opted-out", "invalid-number", "other-refusal"],
)
async def test_permanent_refusal_is_recorded_with_its_consequences(
    gate: SendActivities,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
    code: str,
    suppressed_scope: str | None,
    complaints: int,
    confirmation: SendDecision,
) -> None:
    """A Twilio refusal fails the message with its code, writes one audit row with the provider's
    words, suppresses marketing for an opt-out and everything for a dead number (nothing for another
    refusal), counts an opt-out as a complaint; a later confirmation goes or not accordingly."""
    await faults(http, carrier, {"provider": "twilio", "code": code, "message": "refused here"})

    result = await run(gate, send(1, Category.MARKETING))

    assert (result.decision, result.reason) == (SendDecision.BLOCKED, f"provider:{code}")
    [row] = await all_rows(sessions, Message)
    assert (row.id, row.status, row.provider, row.error_code, row.reason) == (
        result.message_id,
        "failed",
        "twilio",
        code,
        f"provider:{code}",
    )
    [change] = await all_rows(sessions, MessageStatusChange)
    assert (change.message_id, change.provider, change.status, change.error_code, change.applied) == (
        row.id,
        "twilio",
        "failed",
        code,
        True,
    )
    assert change.raw == {"message": f"{code}: refused here"}
    suppressions = [(s.reason, s.source, s.scope) for s in await all_rows(sessions, Suppression)]
    if suppressed_scope == "none":
        assert suppressions == []
    else:
        assert suppressions == [(f"provider:{code}", "twilio", suppressed_scope)]
    assert [(c.message_id, c.code) for c in await all_rows(sessions, Complaint)] == [
        (row.id, code)
    ] * complaints

    await faults(http, carrier)
    later = await run(gate, send(2, Category.TRANSACTIONAL))
    assert later.decision is confirmation
    assert len(await ledger(http, carrier)) == (1 if confirmation is SendDecision.SENT else 0)
    assert (await run(gate, send(1, Category.MARKETING))).status is MessageStatus.FAILED


async def test_send_not_reaching_the_provider_is_marked_and_resent_at_once(
    gate: SendActivities,
    transport: FaultyTransport,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """A connection refused before the request left is recorded ``not_sent:ConnectError`` on the
    pending message, so the retry sends at once instead of waiting for Twilio's lookup grace."""
    transport.refuse_next_send()
    with pytest.raises(ApplicationError) as failure:
        await run(gate, send(1, Category.MARKETING))
    assert failure.value.type == "ProviderUnreachable"
    [row] = await all_rows(sessions, Message)
    assert (row.status, row.reason, row.route) == ("pending", "not_sent:ConnectError", "twilio-intl")

    result = await run(gate, send(1, Category.MARKETING))

    [entry] = await ledger(http, carrier)
    [row] = await all_rows(sessions, Message)
    assert (result.decision, result.provider_message_id) == (SendDecision.SENT, entry["provider_id"])
    assert (row.status, row.reason) == ("submitted", None)


async def test_send_refused_connection_leaves_another_attempts_send_alone(
    gate: SendActivities, transport: FaultyTransport, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """When a concurrent attempt recorded the message submitted while this one failed to connect,
    this attempt does not mark it ``not_sent``: the store keeps the other attempt's record."""

    async def other_attempt_sent_it() -> None:
        async with sessions() as session:
            await session.exec(update(Message).values(status="submitted", provider_message_id="SM-other"))
            await session.commit()

    transport.refuse_next_send(meanwhile=other_attempt_sent_it)
    with pytest.raises(ApplicationError):
        await run(gate, send(1, Category.MARKETING))

    [row] = await all_rows(sessions, Message)
    assert (row.status, row.reason, row.provider_message_id) == ("submitted", None, "SM-other")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("stop", (SendDecision.SUPPRESSED, "suppressed")),
        ("withdrawn", (SendDecision.BLOCKED, "consent_withdrawn:support_email")),
        ("new-phone", (SendDecision.SUPPRESSED, "suppressed")),
    ],
    ids=["stop-reply", "consent-withdrawn", "old-number-stopped-after-a-phone-change"],
)
async def test_send_retry_judges_the_recipient_as_they_are_now(
    gate: SendActivities,
    transport: FaultyTransport,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
    change: str,
    expected: tuple[SendDecision, str],
) -> None:
    """Between a marketing send that never reached the provider and its retry, the number replies
    STOP, or consent is withdrawn, or the profile moves to a new number after the old one (which
    the message is addressed to) replied STOP: the retry is refused, and nothing is sent."""
    transport.refuse_next_send()
    with pytest.raises(ApplicationError):
        await run(gate, send(1, Category.MARKETING))
    async with sessions() as session:
        if change in ("stop", "new-phone"):
            await suppress(session, US, reason="reply:STOP", source="twilio")
        if change == "withdrawn":
            await consent.record(session, "us", "withdrawn", ConsentIn(source="support_email"))
        if change == "new-phone":
            await session.exec(update(Customer).values(phone="+14155550199"))
        await session.commit()

    result = await run(gate, send(1, Category.MARKETING))

    assert (result.decision, result.reason) == expected
    [row] = await all_rows(sessions, Message)
    assert (row.to, row.status, row.reason) == (US, "blocked", expected[1])
    assert await ledger(http, carrier) == []


async def test_retry_after_a_deploy_that_left_no_route_blocks_with_no_route(
    gate: SendActivities,
    transport: FaultyTransport,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """A send whose first attempt never reached Twilio, retried by a worker whose routes (after a
    deploy) serve only China: the retry blocks the message `no_route: ...` saying why, on the row and
    in the result, and nothing reaches any carrier."""
    transport.refuse_next_send()
    with pytest.raises(ApplicationError):
        await run(gate, send(1, Category.TRANSACTIONAL))
    china_only = [r for r in local_routes(carrier) if r.countries == ["CN"]]
    assert china_only, "the local routes have China-only routes"
    redeployed = SendActivities(
        sessions,
        build_router(china_only, http),
        link_base_url="https://n.example",
        quiet_hours=ALWAYS_OPEN,
        caps=[],
    )

    result = await run(redeployed, send(1, Category.TRANSACTIONAL), attempt=2)

    [row] = await all_rows(sessions, Message)
    reason = "no_route: no route serves US with template 'payment_success'"
    assert (result.decision, result.reason) == (SendDecision.BLOCKED, reason)
    assert (row.status, row.reason) == ("blocked", reason)
    assert await ledger(http, carrier) == []
