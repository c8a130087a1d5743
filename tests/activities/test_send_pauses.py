"""The gate's paused scopes: held marketing never reaches the carrier, a paused route is skipped
for the next one, and a resume lets sends go again. The real send gate on the real store, against
the carrier simulator's Aliyun, Tencent and Twilio APIs over loopback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance.pauses import PauseCache, Scope, Source, pause, resume
from activities.routing import Router
from activities.send import SendActivities
from nudge.models import Category, MessageStatus, SendDecision, SendRequest
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.store import Complaint, Message
from tests.activities.sends import request, run
from tests.carrier import configure, ledger

CART_URL = "https://shop.example.com/cart/k1"


@pytest.fixture
def sends(sessions: async_sessionmaker[AsyncSession], router: Router) -> SendActivities:  # noqa: F811
    """The send gate; its pause cache reads the store on every send (TTL 0), so that a pause
    takes effect at once here (the worker's 1 s TTL has a test of its own)."""
    return SendActivities(
        sessions,
        router,
        link_base_url="https://nudge.example.com",
        status_callbacks={"twilio": "https://nudge.example.com/v1/webhooks/twilio/status"},
        quiet_hours=ALWAYS_OPEN,
        pauses=PauseCache(sessions, ttl=0),
    )


@dataclass
class Gate:
    """The send gate, its store and the carrier's ledger."""

    sends: SendActivities
    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    carrier: str

    async def ledger(self) -> list[dict[str, Any]]:
        return await ledger(self.http, self.carrier)

    async def pause(self, scope: Scope, value: str) -> None:
        await pause(self.sessions, scope=scope, value=value, reason="test", source=Source.MANUAL, by="test")

    async def resume(self, scope: Scope, value: str) -> None:
        await resume(self.sessions, scope=scope, value=value, reason="test", by="test")


@pytest.fixture
def gate(
    sends: SendActivities,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,  # noqa: F811
    carrier: str,  # noqa: F811
) -> Gate:
    return Gate(sends=sends, sessions=sessions, http=http, carrier=carrier)


def reminder(customer: str = "cn", key: str = "1", **overrides: Any) -> SendRequest:
    """A marketing cart reminder from the cart journey."""
    fields: dict[str, Any] = {
        "idempotency_key": f"wf-{customer}/run/{key}",
        "journey": "cart_abandonment",
        "step": "send:cart_reminder",
        "template": "cart_reminder",
        "params": {"name": "Ada", "cart_url": CART_URL},
        "category": Category.MARKETING,
    }
    return request(customer, **(fields | overrides))


@pytest.mark.usefixtures("customers")
async def test_paused_template_blocks_marketing_and_nothing_reaches_the_carrier(gate: Gate) -> None:
    """A paused template: the gate answers blocked, paused:template=..., records it on the message,
    and the carrier receives nothing."""
    await gate.pause(Scope.TEMPLATE, "cart_reminder")

    result = await run(gate.sends, reminder())

    assert (result.decision, result.reason) == (SendDecision.BLOCKED, "paused:template=cart_reminder")
    async with gate.sessions() as session:
        message = (await session.exec(select(Message))).one()
    assert (message.status, message.reason) == (MessageStatus.BLOCKED, "paused:template=cart_reminder")
    assert await gate.ledger() == []


@pytest.mark.usefixtures("customers")
async def test_paused_journey_and_signature_hold_marketing(gate: Gate) -> None:
    """A paused journey holds its sends. A paused signature holds it on every route that signs
    with it: the mainland reminder moves to the one route with another sender (twilio-intl), and
    one that must sign "Nudge" is blocked."""
    await gate.pause(Scope.JOURNEY, "cart_abandonment")
    held = await run(gate.sends, reminder(key="1"))
    await gate.resume(Scope.JOURNEY, "cart_abandonment")
    await gate.pause(Scope.SIGNATURE, "Nudge")
    moved = await run(gate.sends, reminder(key="2"))
    forced = await run(gate.sends, reminder(key="3", signature="Nudge"))

    assert (held.decision, held.reason) == (SendDecision.BLOCKED, "paused:journey=cart_abandonment")
    assert (moved.decision, moved.route) == (SendDecision.SENT, "twilio-intl")
    assert (forced.decision, forced.reason) == (SendDecision.BLOCKED, "paused:signature=Nudge")
    [entry] = await gate.ledger()
    assert entry["provider"] == "twilio"


@pytest.mark.usefixtures("customers")
async def test_paused_template_lets_transactional_through(gate: Gate) -> None:
    """Pauses hold marketing only: a payment confirmation with a paused template and route still goes."""
    await gate.pause(Scope.TEMPLATE, "payment_success")
    await gate.pause(Scope.ROUTE, "aliyun-cn")

    result = await run(gate.sends, request())

    assert (result.decision, result.route) == (SendDecision.SENT, "aliyun-cn")
    assert len(await gate.ledger()) == 1


@pytest.mark.usefixtures("customers")
async def test_paused_route_fails_over_to_the_next_route(gate: Gate) -> None:
    """With aliyun-cn paused, a mainland reminder goes out on tencent-cn, the next route."""
    await gate.pause(Scope.ROUTE, "aliyun-cn")

    result = await run(gate.sends, reminder())

    [entry] = await gate.ledger()
    assert (result.decision, result.route, entry["provider"]) == (SendDecision.SENT, "tencent-cn", "tencent")


@pytest.mark.usefixtures("customers")
async def test_every_candidate_route_paused_blocks_with_the_first_routes_pause(gate: Gate) -> None:
    """A forced route that is paused leaves no candidate: blocked paused:route=..., not a retry."""
    await gate.pause(Scope.ROUTE, "tencent-cn")

    result = await run(gate.sends, reminder(route="tencent-cn"))

    assert (result.decision, result.reason) == (SendDecision.BLOCKED, "paused:route=tencent-cn")
    assert await gate.ledger() == []


@pytest.mark.usefixtures("customers")
async def test_resume_lets_sends_go_again(gate: Gate) -> None:
    """Paused: blocked; resumed: the next reminder reaches the carrier."""
    await gate.pause(Scope.TEMPLATE, "cart_reminder")
    blocked = await run(gate.sends, reminder(key="1"))
    await gate.resume(Scope.TEMPLATE, "cart_reminder")

    sent = await run(gate.sends, reminder(key="2"))

    assert (blocked.decision, sent.decision) == (SendDecision.BLOCKED, SendDecision.SENT)
    [entry] = await gate.ledger()
    assert (entry["client_ref"], entry["template_code"]) == (sent.message_id, "SMS_480001")


@pytest.mark.usefixtures("customers")
async def test_provider_opt_out_code_counts_as_a_complaint(gate: Gate) -> None:
    """Twilio 21610 on a marketing send is a complaint of that message, with its scopes."""
    await configure(gate.http, gate.carrier, faults=[{"provider": "twilio", "code": "21610"}])

    result = await run(gate.sends, reminder("us"))

    async with gate.sessions() as session:
        [complaint] = (await session.exec(select(Complaint))).all()
    assert (complaint.message_id, complaint.kind, complaint.code) == (
        result.message_id,
        "provider_code",
        "21610",
    )
    assert (complaint.template, complaint.journey, complaint.route) == (
        "cart_reminder",
        "cart_abandonment",
        "twilio-intl",
    )
