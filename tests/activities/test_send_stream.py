"""The send's decisions published to the stream in the transactions that record them: sent,
blocked with its reason, failed (and opted out, for a provider's opt-out code), once each and
without the number or the text. The real gate on the real store, against the simulator."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.routing import build_router
from activities.send import SendActivities
from nudge.models import Category, FrequencyCap, MessageStatus, SendDecision
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.routes import local_routes
from nudge.sinks import StreamWebhook
from nudge.store import StreamEvent, suppress
from tests.activities.sends import run
from tests.activities.test_send_failures import US, faults, send
from tests.customers import add_customers, new_customer

SINK = StreamWebhook(name="crm", url="https://crm.example/hook", secret=SecretStr("crm-secret-0123456789"))


@pytest.fixture
async def gate(
    sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, carrier: str
) -> SendActivities:
    """The gate on the local routes (a US number goes out on twilio-intl), publishing to ``SINK``."""
    await add_customers(sessions, new_customer("us", US, name="Bo"))
    router = build_router(local_routes(carrier), http)
    return SendActivities(
        sessions, router, link_base_url="https://n.example", quiet_hours=ALWAYS_OPEN, caps=[], sinks=[SINK]
    )


async def streamed(sessions: async_sessionmaker[AsyncSession]) -> list[StreamEvent]:
    async with sessions() as session:
        return list((await session.exec(select(StreamEvent).order_by(col(StreamEvent.id)))).all())


async def test_send_publishes_sent_once_without_the_number_or_text(
    gate: SendActivities, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A message the provider takes publishes ``sent`` with its route, provider and cost; the
    activity's retry with the same key publishes nothing more."""
    result = await run(gate, send(1, Category.TRANSACTIONAL))
    await run(gate, send(1, Category.TRANSACTIONAL), attempt=2)

    assert result.decision is SendDecision.SENT
    [sent] = await streamed(sessions)
    assert (sent.kind, sent.customer_id) == ("sent", "us")
    body = sent.body
    assert (body["message_id"], body["status"], body["provider"], body["route"]) == (
        result.message_id,
        "submitted",
        "twilio",
        "twilio-intl",
    )
    assert body["provider_message_id"] and body["segments"] == 1
    assert "to" not in body and "body" not in body and US[1:] not in str(body)


async def test_send_publishes_blocked_with_its_reason(
    gate: SendActivities, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Marketing to a number that replied STOP is blocked, and published ``blocked`` with the
    gate's reason."""
    async with sessions() as session:
        await suppress(session, US, reason="reply:stop", source="twilio")
        await session.commit()

    result = await run(gate, send(1, Category.MARKETING))

    assert result.status is MessageStatus.BLOCKED and result.reason
    [blocked] = await streamed(sessions)
    assert (blocked.kind, blocked.body["status"], blocked.body["reason"]) == (
        "blocked",
        "blocked",
        result.reason,
    )


async def test_send_refused_with_an_opt_out_code_publishes_failed_and_opted_out(
    gate: SendActivities, sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, carrier: str
) -> None:
    """Twilio's 21610 (the number opted out) publishes ``failed`` with the code, then
    ``opted_out`` from the provider."""
    await faults(http, carrier, {"provider": "twilio", "code": "21610", "message": "unsubscribed"})

    await run(gate, send(1, Category.TRANSACTIONAL))

    failed, opted_out = await streamed(sessions)
    assert (failed.kind, failed.body["error_code"], failed.body["status"]) == ("failed", "21610", "failed")
    assert (opted_out.kind, opted_out.body["source"]) == ("opted_out", "provider")
    assert failed.event_id != opted_out.event_id


async def test_send_over_a_frequency_cap_publishes_blocked_once(
    gate: SendActivities, sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, carrier: str
) -> None:
    """The second marketing message in a day under a cap of one is published ``blocked`` with the
    cap's reason, after the first's ``sent``."""
    router = build_router(local_routes(carrier), http)
    capped = SendActivities(
        sessions,
        router,
        link_base_url="https://n.example",
        quiet_hours=ALWAYS_OPEN,
        caps=[FrequencyCap(limit=1, window=timedelta(hours=24))],
        sinks=[SINK],
    )
    await run(capped, send(1, Category.MARKETING))
    second = await run(capped, send(2, Category.MARKETING))

    assert second.decision is SendDecision.CAPPED
    assert [(row.kind, row.body["reason"]) for row in await streamed(sessions)] == [
        ("sent", None),
        ("blocked", second.reason),
    ]


async def test_send_to_a_customer_without_a_phone_publishes_blocked_once(
    gate: SendActivities, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A message blocked from the start (its customer has no phone: ``no_phone``) is published
    ``blocked`` with its reason when it is stored; the activity's retry publishes nothing more."""
    await add_customers(sessions, new_customer("nophone", None, name="Cy"))
    request = send(1, Category.TRANSACTIONAL).model_copy(
        update={"customer_id": "nophone", "idempotency_key": "wf-nophone/run/1", "workflow_id": "wf-nophone"}
    )

    result = await run(gate, request)
    await run(gate, request, attempt=2)

    assert result.status is MessageStatus.BLOCKED and result.reason == "no_phone"
    [blocked] = await streamed(sessions)
    assert (blocked.kind, blocked.customer_id, blocked.body["reason"]) == ("blocked", "nophone", "no_phone")
    assert (blocked.body["message_id"], blocked.body["status"]) == (result.message_id, "blocked")
