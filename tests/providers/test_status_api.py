"""Each adapter's status API, against the simulator's wire formats: what a sweep of messages whose
receipt never came learns from the provider (Aliyun QuerySendDetails, Tencent's status pull,
Twilio's message fetch, the simulator's native lookup).

The simulator drops every receipt here, so the status API is the only way to learn the outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from activities.providers.base import OutboundSms, Provider, StatusQuery, Submission
from activities.providers.simulator import SimulatorProvider
from nudge.models import MessageStatus
from tests.carrier import configure, ledger
from tests.providers.conftest import aliyun, sms, tencent, twilio, with_code

GOOD_CN, BAD_CN = "+8613800138001", "+8613800138002"
GOOD_US, BAD_US = "+14155550101", "+14155550102"
FAILED_CODES = {"aliyun": "MK:0001", "tencent": "MK:0001", "twilio": "30003", "simulator": "undelivered"}
"""The simulator's carrier code for an undelivered message, as each API writes it."""

Factory = Callable[[httpx.AsyncClient, str], Provider]
PROVIDERS: dict[str, tuple[Factory, str, str]] = {
    "aliyun": (aliyun, GOOD_CN, BAD_CN),
    "tencent": (tencent, GOOD_CN, BAD_CN),
    "twilio": (twilio, GOOD_US, BAD_US),
    "simulator": (lambda http, carrier: SimulatorProvider(http, base_url=carrier), GOOD_CN, BAD_CN),
}


def message(name: str, to: str, message_id: str) -> OutboundSms:
    return with_code(sms(to, message_id=message_id), name)


def query(sent: OutboundSms, submission: Submission, at: datetime) -> StatusQuery:
    return StatusQuery(
        message_id=sent.message_id, to=sent.to, provider_message_id=submission.provider_message_id, sent_at=at
    )


async def settled(http: httpx.AsyncClient, carrier: str, *numbers: str) -> None:
    """Wait (with a deadline) until the simulated carrier has decided each number's message."""
    async with asyncio.timeout(20):
        while True:
            entries = [e for e in await ledger(http, carrier) if e["to"] in numbers]
            if len(entries) == len(numbers) and all(e["status"] != "accepted" for e in entries):
                return
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_the_status_api_reports_delivered_undelivered_and_still_waiting(
    http: httpx.AsyncClient, carrier: str, name: str
) -> None:
    """A message still waiting for its report has no status yet (None); once reported, the status
    API gives delivered, or undelivered with the carrier's code; another message's id finds
    nothing."""
    factory, good, bad = PROVIDERS[name]
    provider = factory(http, carrier)
    at = datetime.now(UTC) - timedelta(seconds=1)
    await configure(http, carrier, receipt_drop_rate=1.0, receipt_delay_ms=600_000, fail_numbers=[bad])
    waiting = message(name, good, "st-wait")
    waiting_query = query(waiting, await provider.send(waiting), at)
    assert await provider.fetch_status(waiting_query) is None

    await configure(http, carrier, receipt_delay_ms=0)
    ok, failed = message(name, good, "st-ok"), message(name, bad, "st-bad")
    ok_query = query(ok, await provider.send(ok), at)
    failed_query = query(failed, await provider.send(failed), at)
    await settled(http, carrier, bad)
    async with asyncio.timeout(20):
        while True:
            delivered = await provider.fetch_status(ok_query)
            if delivered is not None:
                break
            await asyncio.sleep(0.05)

    assert delivered.status is MessageStatus.DELIVERED and delivered.error_code is None
    undelivered = await provider.fetch_status(failed_query)
    assert undelivered is not None and undelivered.status is MessageStatus.UNDELIVERED
    assert undelivered.error_code == FAILED_CODES[name]
    assert bad not in str(undelivered.raw) and bad.removeprefix("+86") not in str(undelivered.raw)
    # The one still waiting is still waiting: the status is this message's, not the number's.
    assert await provider.fetch_status(waiting_query) is None
    stranger = waiting_query.model_copy(update={"message_id": "st-none", "provider_message_id": "SM0" * 10})
    assert await provider.fetch_status(stranger) is None


async def test_an_aliyun_batch_is_told_apart_by_number(http: httpx.AsyncClient, carrier: str) -> None:
    """SendBatchSms gives all its numbers one BizId: the status of each is its own number's."""
    provider = aliyun(http, carrier)
    await configure(http, carrier, receipt_drop_rate=1.0, receipt_delay_ms=0, fail_numbers=[BAD_CN])
    at = datetime.now(UTC) - timedelta(seconds=1)
    batch = [message("aliyun", GOOD_CN, "b-ok"), message("aliyun", BAD_CN, "b-bad")]
    outcomes = await provider.send_batch(batch)
    assert all(isinstance(o, Submission) for o in outcomes)
    assert len({o.provider_message_id for o in outcomes if isinstance(o, Submission)}) == 1
    await settled(http, carrier, GOOD_CN, BAD_CN)
    found = [
        await provider.fetch_status(query(sent, outcome, at))
        for sent, outcome in zip(batch, outcomes, strict=True)
        if isinstance(outcome, Submission)
    ]
    assert [d.status if d else None for d in found] == [MessageStatus.DELIVERED, MessageStatus.UNDELIVERED]


async def test_an_aliyun_message_sent_yesterday_in_shanghai_is_found(
    http: httpx.AsyncClient, carrier: str
) -> None:
    """QuerySendDetails asks one Shanghai day at a time: a query from a send time two days back
    walks every day up to today's, and finds today's message."""
    provider = aliyun(http, carrier)
    await configure(http, carrier, receipt_drop_rate=1.0, receipt_delay_ms=0)
    calls: list[dict[str, Any]] = []

    async def counted(request: httpx.Request) -> None:
        calls.append(dict(request.url.params))

    sent = message("aliyun", GOOD_CN, "d-ok")
    submission = await provider.send(sent)
    await settled(http, carrier, GOOD_CN)
    async with httpx.AsyncClient(event_hooks={"request": [counted]}) as watched:
        found = await aliyun(watched, carrier).fetch_status(
            query(sent, submission, datetime.now(UTC) - timedelta(days=2))
        )
    assert found is not None and found.status is MessageStatus.DELIVERED
    assert len({c["SendDate"] for c in calls}) == 3, calls
