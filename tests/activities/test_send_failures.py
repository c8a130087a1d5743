"""A provider's permanent refusal, as the store records it: the failed message, its audit row, the
suppression it leaves (marketing only for an opt-out, everything for a dead number) and the
complaint it counts. The real gate on the real store, against the simulator's Twilio API."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.testing import ActivityEnvironment

from activities.routing import build_router
from activities.send import SendActivities
from nudge.models import Category, MessageStatus, SendDecision, SendRequest, SendResult
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.routes import local_routes
from nudge.store import Complaint, Message, MessageStatusChange, Suppression
from tests.customers import add_customers, new_customer

US = "+14155550100"


@pytest.fixture
async def gate(
    sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, carrier_url: str
) -> SendActivities:
    """The gate on the local routes (a US number goes out on twilio-intl), without caps."""
    await add_customers(sessions, new_customer("us", US, name="Bo"))
    router = build_router(local_routes(carrier_url), http)
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


async def run(gate: SendActivities, request: SendRequest) -> SendResult:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, activity_type="send_message")
    result: SendResult = await env.run(gate.send_message, request)
    return result


async def faults(http: httpx.AsyncClient, carrier_url: str, *entries: dict[str, Any]) -> None:
    response = await http.post(f"{carrier_url}/_sim/config", json={"faults": list(entries)})
    assert response.status_code == 200


async def all_rows(sessions: async_sessionmaker[AsyncSession], model: Any) -> list[Any]:
    async with sessions() as session:
        return list((await session.exec(select(model))).all())


async def ledger(http: httpx.AsyncClient, carrier_url: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = (await http.get(f"{carrier_url}/_sim/ledger")).json()
    return entries


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
    carrier_url: str,
    code: str,
    suppressed_scope: str | None,
    complaints: int,
    confirmation: SendDecision,
) -> None:
    """A Twilio refusal fails the message with its code, writes one audit row with the provider's
    words, suppresses marketing for an opt-out and everything for a dead number (nothing for another
    refusal), counts an opt-out as a complaint; a later confirmation goes or not accordingly."""
    await faults(http, carrier_url, {"provider": "twilio", "code": code, "message": "refused here"})

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

    await faults(http, carrier_url)
    later = await run(gate, send(2, Category.TRANSACTIONAL))
    assert later.decision is confirmation
    assert len(await ledger(http, carrier_url)) == (1 if confirmation is SendDecision.SENT else 0)
    assert (await run(gate, send(1, Category.MARKETING))).status is MessageStatus.FAILED
