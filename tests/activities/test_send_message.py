from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.exceptions import ApplicationError

from activities.compliance.registry import Registry
from activities.send import SendActivities
from nudge.models import MessageStatus, SendDecision, SendRequest, SendResult
from nudge.segments import count_segments
from nudge.store import Link, Message, MessageStatusChange, suppress
from tests.activities.conftest import GateFactory
from tests.activities.sends import run
from tests.carrier import ledger
from tests.customers import add_customers, new_customer
from tests.faults import FaultyTransport

PHONE = "+8613800138000"
CART_URL = "https://shop.example.com/cart/k1?utm_source=sms"


def send_request(**overrides: Any) -> SendRequest:
    fields: dict[str, Any] = {
        "idempotency_key": "journey:cart_abandonment:c1:k1/run-1/1",
        "workflow_id": "journey:cart_abandonment:c1:k1",
        "journey": "cart_abandonment",
        "step": "send:cart_reminder",
        "customer_id": "c1",
        "template": "cart_reminder",
        "params": {"name": "Ada", "cart_url": CART_URL},
    }
    return SendRequest(**(fields | overrides))


async def add_customer(
    sessions: async_sessionmaker[AsyncSession], customer_id: str = "c1", phone: str | None = PHONE
) -> None:
    await add_customers(sessions, new_customer(customer_id, phone))


async def rows(sessions: async_sessionmaker[AsyncSession], model: Any) -> list[Any]:
    async with sessions() as session:
        return list((await session.exec(select(model))).all())


async def test_send_message_renders_tracks_links_and_submits(
    sends: SendActivities,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """A send renders the template with tracked links, records the message and reaches the
    carrier exactly once."""
    await add_customer(sessions)

    result = await run(sends, send_request())

    [message] = await rows(sessions, Message)
    [link] = await rows(sessions, Link)
    [entry] = await ledger(http, carrier)
    short_url = f"https://nudge.example.com/l/{link.code}"
    assert message.body == f"Ada, your cart is waiting: {short_url} Reply STOP to opt out"
    assert CART_URL not in message.body
    assert (link.message_id, link.target_url) == (message.id, CART_URL)
    assert message.status == MessageStatus.SUBMITTED
    assert (message.to, message.provider) == (PHONE, "simulator")
    assert message.provider_message_id == entry["id"]
    assert message.segments == count_segments(message.body) == entry["segments"] == 1
    assert (entry["client_ref"], entry["to"], entry["sender"], entry["body"]) == (
        message.id,
        PHONE,
        "Nudge",
        message.body,
    )
    assert result == SendResult(
        message_id=message.id,
        decision=SendDecision.SENT,
        provider="simulator",
        provider_message_id=entry["id"],
        segments=1,
        route="sim",
        cost=0.0,
        status=MessageStatus.SUBMITTED,
    )
    [change] = await rows(sessions, MessageStatusChange)
    assert (change.message_id, change.status, change.applied) == (message.id, "submitted", True)


async def test_send_message_long_unicode_body_counts_segments(
    sends: SendActivities,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """The stored segment count is the carrier's for a multi-part UCS-2 message."""
    await add_customer(sessions)

    result = await run(
        sends,
        send_request(
            template="payment_success",
            params={"order_id": "订单" * 40, "amount": "42.00"},
        ),
    )

    [entry] = await ledger(http, carrier)
    assert result.segments == entry["segments"] == 2


async def test_send_message_retry_with_same_key_sends_nothing_new(
    sends: SendActivities,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """A retried activity with the same idempotency key returns the first result and neither
    writes a second row nor reaches the carrier again."""
    await add_customer(sessions)

    first = await run(sends, send_request())
    again = await run(sends, send_request(), attempt=2)
    replayed = await run(sends, send_request(), attempt=1)

    assert again == first == replayed
    assert len(await rows(sessions, Message)) == 1
    assert len(await rows(sessions, Link)) == 1
    assert len(await ledger(http, carrier)) == 1


async def test_send_message_retry_after_lost_answer_reconciles(
    sends: SendActivities,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
    transport: FaultyTransport,
) -> None:
    """When the carrier accepted a send but its answer was lost, the retry finds the message at
    the carrier instead of sending it a second time."""
    await add_customer(sessions)
    transport.lose_next_send()

    with pytest.raises(ApplicationError) as failure:
        await run(sends, send_request())
    assert failure.value.type == "ProviderUnreachable"
    assert failure.value.non_retryable is False
    [pending] = await rows(sessions, Message)
    assert pending.status == MessageStatus.PENDING
    assert len(await ledger(http, carrier)) == 1

    result = await run(sends, send_request(), attempt=2)

    [entry] = await ledger(http, carrier)
    [message] = await rows(sessions, Message)
    assert result.decision is SendDecision.SENT
    assert result.message_id == message.id == pending.id == entry["client_ref"]
    assert result.provider_message_id == message.provider_message_id == entry["id"]
    assert message.status == MessageStatus.SUBMITTED


async def test_send_message_reconciles_before_the_gate_holds_a_message(
    sends: SendActivities,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
    transport: FaultyTransport,
) -> None:
    """A STOP that lands between a send whose answer was lost and its retry: the carrier has the
    message, so the store records it sent (not suppressed), and nothing goes out twice."""
    await add_customer(sessions)
    transport.lose_next_send()
    with pytest.raises(ApplicationError):
        await run(sends, send_request())
    async with sessions() as session:
        await suppress(session, PHONE, reason="reply:STOP", source="simulator")
        await session.commit()

    result = await run(sends, send_request(), attempt=2)

    assert result.decision is SendDecision.SENT
    assert len(await ledger(http, carrier)) == 1
    later = await run(sends, send_request(idempotency_key="another/run/2"))
    assert later.decision is SendDecision.SUPPRESSED


async def test_send_message_retry_after_outage_sends_once(
    sends: SendActivities,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """A retry after the carrier refused with a 5xx finds nothing to reconcile and sends once."""
    await add_customer(sessions)
    await http.post(f"{carrier}/_sim/config", json={"failure_rate": 1.0})
    with pytest.raises(ApplicationError):
        await run(sends, send_request())
    await http.post(f"{carrier}/_sim/config", json={"failure_rate": 0.0})

    result = await run(sends, send_request(), attempt=2)

    [entry] = await ledger(http, carrier)
    assert result.decision is SendDecision.SENT
    assert result.provider_message_id == entry["id"]
    assert len(await rows(sessions, Message)) == 1


async def test_send_message_carrier_unavailable_is_retryable(
    sends: SendActivities,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """A 503 from the carrier fails the attempt with a retryable error and leaves the row
    pending."""
    await add_customer(sessions)
    response = await http.post(f"{carrier}/_sim/config", json={"failure_rate": 1.0})
    assert response.json()["failure_rate"] == 1.0

    with pytest.raises(ApplicationError) as failure:
        await run(sends, send_request())

    assert failure.value.type == "RetryableProviderError"
    assert failure.value.non_retryable is False
    assert failure.value.message == "sim unavailable: carrier busy"
    [message] = await rows(sessions, Message)
    assert message.status == MessageStatus.PENDING
    assert await ledger(http, carrier) == []


@pytest.mark.parametrize("customer", ["without_phone", "unknown"])
async def test_send_message_no_phone_is_blocked(
    sends: SendActivities,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
    customer: str,
) -> None:
    """A customer without a phone number (or not in the CRM) is blocked with reason no_phone,
    and nothing reaches the carrier."""
    if customer == "without_phone":
        await add_customer(sessions, phone=None)

    result = await run(sends, send_request())

    assert (result.decision, result.reason) == (SendDecision.BLOCKED, "no_phone")
    [message] = await rows(sessions, Message)
    assert (message.status, message.reason) == (MessageStatus.BLOCKED, "no_phone")
    assert await ledger(http, carrier) == []


@pytest.mark.parametrize(
    ("template", "params", "error"),
    [
        ("cart_reminder", {"name": "Ada"}, "missing variables: cart_url"),
        ("cart_reminder", {"name": ["Ada"], "cart_url": CART_URL}, "must be a string or number"),
        ("no_such_template", {}, "unknown template"),
    ],
    ids=["missing-variable", "non-scalar-variable", "unknown-template"],
)
async def test_send_message_template_error_is_permanent(
    sends: SendActivities,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
    template: str,
    params: dict[str, Any],
    error: str,
) -> None:
    """A template problem fails with a non-retryable TemplateError and records or sends nothing."""
    await add_customer(sessions)

    with pytest.raises(ApplicationError, match=error) as failure:
        await run(sends, send_request(template=template, params=params))

    assert failure.value.type == "TemplateError"
    assert failure.value.non_retryable is True
    assert await rows(sessions, Message) == []
    assert await rows(sessions, Link) == []
    assert await ledger(http, carrier) == []


async def test_send_message_carrier_rejection_is_blocked_and_final(
    sends: SendActivities,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """A 4xx from the carrier (a number it cannot take) blocks the send with a provider reason,
    marks the message failed, and a retry does not call the carrier again."""
    await add_customer(sessions, phone="13800138000")

    result = await run(sends, send_request())

    assert result.decision is SendDecision.BLOCKED
    assert result.reason is not None and re.fullmatch(r"provider:\S+", result.reason)
    [message] = await rows(sessions, Message)
    assert message.status == MessageStatus.FAILED
    assert message.reason == result.reason
    assert [(c.status, c.applied) for c in await rows(sessions, MessageStatusChange)] == [("failed", True)]
    assert await ledger(http, carrier) == []

    await http.post(f"{carrier}/_sim/config", json={"failure_rate": 1.0})
    assert await run(sends, send_request(), attempt=2) == result


class RivalWinsTheRace(Registry):
    """The registry, except that the gate's first template lookup (after it found no message by
    the key) lets a rival attempt store a message under the same key first: the race that a
    concurrent attempt of the same activity wins."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], rival: Message) -> None:
        super().__init__(sessions)
        self._rival_sessions = sessions
        self._rival: Message | None = rival

    async def get(self, code: str, language: str | None = None) -> Any:
        if self._rival is not None:
            rival, self._rival = self._rival, None
            async with self._rival_sessions() as session:
                session.add(rival)
                await session.commit()
        return await super().get(code, language)


def submitted(key: str, message_id: str) -> Message:
    return Message(
        id=message_id,
        idempotency_key=key,
        workflow_id="journey:cart_abandonment:c1:k1",
        journey="cart_abandonment",
        step="send:cart_reminder",
        customer_id="c1",
        template="cart_reminder",
        category="marketing",
        to=PHONE,
        body="sent by the rival",
        status="submitted",
        provider="simulator",
        provider_message_id=f"sim-{message_id}",
        route="sim",
    )


async def test_send_message_losing_the_insert_race_returns_the_winners_message(
    make_sends: GateFactory,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """When a concurrent attempt stores the same idempotency key between this attempt's lookup and
    its insert, this attempt answers with the winner's message (not another one in the store) and
    sends nothing."""
    await add_customer(sessions)
    async with sessions() as session:
        session.add(submitted("another/run/1", "m-other"))
        await session.commit()
    request = send_request()
    raced = make_sends(registry=RivalWinsTheRace(sessions, submitted(request.idempotency_key, "m-rival")))

    result = await run(raced, request)

    assert (result.message_id, result.decision, result.provider_message_id) == (
        "m-rival",
        SendDecision.SENT,
        "sim-m-rival",
    )
    assert sorted(m.id for m in await rows(sessions, Message)) == ["m-other", "m-rival"]
    assert await rows(sessions, Link) == []
    assert await ledger(http, carrier) == []
