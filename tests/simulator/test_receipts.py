"""Receipts in each provider's callback format: delays, drops, duplicates, reordering and retries."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest

from nudge.signing import twilio_signature_valid
from tests.simulator.conftest import Receiver, Sim
from tests.simulator.signed import TWILIO_TOKEN, aliyun_send, send_payload, tencent_call, twilio_send

TIME = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"


async def settled(sim: Sim, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first ledger entry once ``done`` holds for it (state moves just after a post returns)."""
    for _ in range(100):
        entry: dict[str, Any] = (await sim.ledger())[0]
        if done(entry):
            return entry
        await asyncio.sleep(0.05)
    return entry


async def test_aliyun_receipt_is_posted_as_sms_report(sim: Sim, receiver: Receiver) -> None:
    """SmsReport: a JSON array item with the 11-digit number, success, sizes, BizId and OutId."""
    answer = (await aliyun_send(sim.http, "+8613800138000")).json()
    [report] = await receiver.wait_for("/aliyun/report")
    assert report.headers["content-type"].startswith("application/json")
    [item] = report.json()
    assert item["phone_number"] == "13800138000"
    assert (item["success"], item["err_code"], item["err_msg"]) == (True, "DELIVERED", "用户接收成功")
    assert (item["sms_size"], item["biz_id"], item["out_id"]) == ("1", answer["BizId"], "out-1")
    assert re.fullmatch(TIME, item["send_time"]) and re.fullmatch(TIME, item["report_time"])
    entry = await settled(sim, lambda e: e["receipts_posted"] == 1)
    assert (entry["status"], entry["receipts_posted"]) == ("delivered", 1)


async def test_aliyun_fail_number_gets_a_failed_report(sim: Sim, receiver: Receiver) -> None:
    """A number in fail_numbers is reported with success false and a carrier error code."""
    await sim.configure(fail_numbers=["+8613800138000"])
    await aliyun_send(sim.http, "13800138000", out_id=None)
    [report] = await receiver.wait_for("/aliyun/report")
    [item] = report.json()
    assert (item["success"], item["err_code"], item["out_id"]) == (False, "MK:0001", None)


@pytest.mark.parametrize(("fail", "final"), [(False, "delivered"), (True, "undelivered")])
async def test_twilio_callbacks_are_signed_sent_then_final(
    sim: Sim, receiver: Receiver, fail: bool, final: str
) -> None:
    """Status callbacks are signed form posts: sent, then delivered or undelivered with 30003."""
    if fail:
        await sim.configure(fail_numbers=["+14155550100"])
    callback = f"{receiver.url}/twilio/status?route=twilio-intl"
    sid = (await twilio_send(sim.http, StatusCallback=callback)).json()["sid"]
    sent, done = await receiver.wait_for("/twilio/status", 2)
    for post in (sent, done):
        form = post.form()
        assert twilio_signature_valid(callback, form, post.headers["x-twilio-signature"], TWILIO_TOKEN)
        fields = dict(form)
        assert (fields["MessageSid"], fields["SmsSid"], fields["ApiVersion"]) == (sid, sid, "2010-04-01")
        assert fields["SmsStatus"] == fields["MessageStatus"]
    assert dict(sent.form())["MessageStatus"] == "sent"
    fields = dict(done.form())
    assert fields["MessageStatus"] == final
    assert re.fullmatch(r"\d{10}", fields["RawDlrDoneDate"])
    assert fields.get("ErrorCode") == ("30003" if fail else None)


async def test_tencent_receipt_is_posted_as_status_report(sim: Sim, receiver: Receiver) -> None:
    """The status report is a JSON array item with nationcode, mobile, SUCCESS/DELIVRD and the SerialNo."""
    sent = await tencent_call(sim.http, sim.host, "SendSms", send_payload())
    [report] = await receiver.wait_for("/tencent/report")
    [item] = report.json()
    assert (item["nationcode"], item["mobile"], item["sid"]) == (
        "86",
        "13800138000",
        sent["SendStatusSet"][0]["SerialNo"],
    )
    assert (item["report_status"], item["errmsg"]) == ("SUCCESS", "DELIVRD")
    assert re.fullmatch(TIME, item["user_receive_time"]) and item["description"]


async def test_receipt_duplicate_rate_posts_twice(sim: Sim, receiver: Receiver) -> None:
    """With receipt_duplicate_rate=1 the same receipt arrives twice."""
    await sim.configure(receipt_duplicate_rate=1)
    await aliyun_send(sim.http)
    first, second = await receiver.wait_for("/aliyun/report", 2)
    assert first.body == second.body
    for _ in range(100):  # the counter moves once the second post has returned
        if (await sim.ledger())[0]["receipts_posted"] == 2:
            break
        await asyncio.sleep(0.05)
    assert (await sim.ledger())[0]["receipts_posted"] == 2


async def test_receipt_drop_rate_posts_nothing_but_settles(sim: Sim, receiver: Receiver) -> None:
    """A dropped receipt is never posted, though the message still reaches its final status."""
    await sim.configure(receipt_drop_rate=1)
    await tencent_call(sim.http, sim.host, "SendSms", send_payload())
    for _ in range(100):
        [entry] = await sim.ledger()
        if entry["status"] == "delivered":
            break
        await asyncio.sleep(0.05)
    assert receiver.received == []
    assert (entry["status"], entry["receipts_posted"]) == ("delivered", 0)


async def test_twilio_reorder_posts_delivered_before_sent(sim: Sim, receiver: Receiver) -> None:
    """With receipt_reorder_rate=1 Twilio's delivered callback comes before sent."""
    await sim.configure(receipt_reorder_rate=1)
    await twilio_send(sim.http, StatusCallback=f"{receiver.url}/twilio/status")
    posts = await receiver.wait_for("/twilio/status", 2)
    assert [dict(p.form())["MessageStatus"] for p in posts] == ["delivered", "sent"]


@pytest.mark.parametrize("provider", ["aliyun", "tencent"])
async def test_reorder_posts_the_receipt_before_the_send_is_answered(
    sim: Sim, receiver: Receiver, provider: str
) -> None:
    """For Aliyun and Tencent, reordering means the receipt is in before the send's answer."""
    await sim.configure(receipt_reorder_rate=1, receipt_delay_ms=60_000)
    if provider == "aliyun":
        await aliyun_send(sim.http)
    else:
        await tencent_call(sim.http, sim.host, "SendSms", send_payload())
    assert len(receiver.at(f"/{provider}/report")) == 1


async def test_receipt_is_retried_after_a_receiver_error(sim: Sim, receiver: Receiver) -> None:
    """A receipt refused with HTTP 500 is posted again after a short backoff."""
    receiver.fail_next = 1
    await aliyun_send(sim.http)
    await receiver.wait_for("/aliyun/report")
    assert (await settled(sim, lambda e: e["receipts_posted"] == 1))["receipts_posted"] == 1


async def test_receipt_is_redelivered_through_an_outage_and_given_up_after_the_retry_window(
    sim: Sim, receiver: Receiver
) -> None:
    """A receiver that refuses the receipt for a while (a gateway outage: ten refusals, some
    seconds) still gets it once it is back; with a retry window shorter than the outage, the
    simulator gives up and the receipt is never posted."""
    receiver.fail_next = 5  # 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s of backoff
    await aliyun_send(sim.http)
    await receiver.until(lambda: len(receiver.at("/aliyun/report")) == 1, timeout=60)
    assert (await settled(sim, lambda e: e["receipts_posted"] == 1))["receipts_posted"] == 1

    await sim.configure(receipt_retry_s=0.5)
    receiver.received.clear()
    receiver.fail_next = 10
    await aliyun_send(sim.http, "13900139000")
    for _ in range(100):
        [entry] = [e for e in await sim.ledger() if e["to"].endswith("13900139000")]
        if entry["status"] == "delivered":
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # past the 0.5 s window and its last backoff: nothing more comes
    assert receiver.fail_next < 10, "the simulator never tried: the test would prove nothing"
    assert receiver.at("/aliyun/report") == []
    [entry] = [e for e in await sim.ledger() if e["to"].endswith("13900139000")]
    assert (entry["status"], entry["receipts_posted"]) == ("delivered", 0)


async def test_provider_message_links_are_clicked(sim: Sim, receiver: Receiver) -> None:
    """click_rate=1 makes the customer click the short link in an Aliyun template message."""
    await sim.configure(click_rate=1)
    link = f"{receiver.url}/l/abc123"
    await aliyun_send(sim.http, template="SMS_480001", params={"name": "Ann", "cart_url": link})
    await receiver.until(lambda: bool(receiver.clicks))
    assert receiver.clicks == ["abc123"]
    assert (await settled(sim, lambda e: bool(e["clicked"])))["clicked"] == [link]
