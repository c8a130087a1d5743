"""Aliyun Dysms at /aliyun/: signing, SendSms, SendBatchSms and QuerySendDetails over loopback."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from simulator.ledger import CHINA_TIME
from tests.simulator.conftest import Sim
from tests.simulator.signed import (
    ALI_BACKUP_KEY,
    ALI_KEY,
    aliyun_acs3_request,
    aliyun_rpc_params,
    aliyun_send,
    send_sms_params,
)


async def test_aliyun_send_sms_records_one_entry_per_number(sim: Sim) -> None:
    """SendSms answers OK with a BizId and records each number with its signed, rendered body."""
    response = await aliyun_send(sim.http, "13800138000,+8613900139000")
    assert response.status_code == 200
    answer = response.json()
    assert answer["Code"] == "OK" and answer["Message"] == "OK" and answer["RequestId"]
    assert re.fullmatch(r"\d+\^0", answer["BizId"])
    entries = await sim.ledger(provider="aliyun")
    assert [e["to"] for e in entries] == ["+8613800138000", "+8613900139000"]
    body = "【Nudge】Payment received: order A1, total 9.90. Thank you!"
    for entry in entries:
        assert entry["body"] == body
        assert entry["segments"] == 1
        assert (entry["account"], entry["signature"], entry["template_code"]) == (
            ALI_KEY,
            "Nudge",
            "SMS_480003",
        )
        assert entry["params"] == {"order_id": "A1", "amount": "9.90"}
        assert (entry["provider_id"], entry["client_ref"]) == (answer["BizId"], "out-1")


async def test_aliyun_send_sms_counts_segments_the_chinese_way(sim: Sim) -> None:
    """A body of more than 70 characters, signature included, is billed in parts of 67."""
    await aliyun_send(sim.http, params={"order_id": "X" * 40, "amount": "1"})
    [entry] = await sim.ledger()
    assert len(entry["body"]) > 70
    assert entry["segments"] == -(-len(entry["body"]) // 67)


async def test_aliyun_get_request_is_signed_with_get(sim: Sim) -> None:
    """An RPC GET signed with method GET is accepted."""
    params = aliyun_rpc_params("SendSms", send_sms_params(), method="GET")
    response = await sim.http.get("/aliyun/", params=params)
    assert response.json()["Code"] == "OK"


@pytest.mark.parametrize(
    ("tamper", "status", "code"),
    [
        ("signature", 400, "SignatureDoesNotMatch"),
        ("key", 404, "InvalidAccessKeyId.NotFound"),
        ("timestamp", 400, "InvalidTimeStamp.Expired"),
        ("unsigned", 400, "MissingSignature"),
    ],
)
async def test_aliyun_rpc_bad_credentials_are_rejected(sim: Sim, tamper: str, status: int, code: str) -> None:
    """A wrong signature, unknown key, stale timestamp or no signature gets Aliyun's error, no send."""
    params = aliyun_rpc_params(
        "SendSms",
        send_sms_params(),
        key="LTAI5tNobody" if tamper == "key" else ALI_KEY,
        clock_skew=timedelta(minutes=-20) if tamper == "timestamp" else timedelta(),
    )
    if tamper == "signature":
        params["Signature"] = "AAAA" + params["Signature"][4:]
    if tamper == "unsigned":
        del params["Signature"]
    response = await sim.http.post("/aliyun/", params=params)
    assert response.status_code == status
    assert response.json()["Code"] == code
    assert response.json()["RequestId"]
    assert await sim.ledger() == []


async def test_aliyun_reused_nonce_is_rejected(sim: Sim) -> None:
    """The same SignatureNonce twice gets SignatureNonceUsed the second time."""
    first = await sim.http.post(
        "/aliyun/", params=aliyun_rpc_params("SendSms", send_sms_params(), nonce="n-1")
    )
    again = await sim.http.post(
        "/aliyun/", params=aliyun_rpc_params("SendSms", send_sms_params(), nonce="n-1")
    )
    assert first.json()["Code"] == "OK"
    assert (again.status_code, again.json()["Code"]) == (400, "SignatureNonceUsed")
    assert len(await sim.ledger()) == 1


async def test_aliyun_acs3_send_is_accepted(sim: Sim) -> None:
    """An ACS3-HMAC-SHA256 SendSms is accepted and recorded under the signing key."""
    query = send_sms_params()
    headers, body = aliyun_acs3_request(sim.host, "SendSms", query)
    response = await sim.http.post("/aliyun/", params=query, headers=headers, content=body)
    assert response.json()["Code"] == "OK", response.text
    [entry] = await sim.ledger()
    assert entry["account"] == ALI_BACKUP_KEY


async def test_aliyun_acs3_tampered_query_is_rejected(sim: Sim) -> None:
    """Changing a signed query parameter after signing breaks the ACS3 signature."""
    query = send_sms_params()
    headers, body = aliyun_acs3_request(sim.host, "SendSms", query)
    tampered = {**query, "PhoneNumbers": "13900139000"}
    response = await sim.http.post("/aliyun/", params=tampered, headers=headers, content=body)
    assert (response.status_code, response.json()["Code"]) == (400, "SignatureDoesNotMatch")


@pytest.mark.parametrize("signing", ["rpc", "acs3"])
async def test_aliyun_send_batch_sms_shares_one_biz_id(sim: Sim, signing: str) -> None:
    """SendBatchSms with its JSON arrays in the form body records N numbers under one BizId."""
    numbers = ["13800138000", "13800138001", "13800138002"]
    form = {
        "PhoneNumberJson": json.dumps(numbers),
        "SignNameJson": json.dumps(["Nudge", "努济", "Nudge"]),
        "TemplateParamJson": json.dumps([{"order_id": f"A{i}", "amount": "1"} for i in range(3)]),
    }
    query = {"TemplateCode": "SMS_480003"}
    if signing == "rpc":
        signed = aliyun_rpc_params("SendBatchSms", {**query, **form})
        response = await sim.http.post(
            "/aliyun/", params={k: v for k, v in signed.items() if k not in form}, data=form
        )
    else:
        headers, body = aliyun_acs3_request(sim.host, "SendBatchSms", query, form)
        response = await sim.http.post("/aliyun/", params=query, headers=headers, content=body)
    answer = response.json()
    assert answer["Code"] == "OK", answer
    entries = await sim.ledger()
    assert [e["to"] for e in entries] == ["+86" + n for n in numbers]
    assert {e["provider_id"] for e in entries} == {answer["BizId"]}
    assert entries[1]["body"].startswith("【努济】Payment received: order A1")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"numbers": "12345"}, "isv.MOBILE_NUMBER_ILLEGAL"),
        ({"numbers": ",".join(["13800138000"] * 1001)}, "isv.MOBILE_COUNT_OVER_LIMIT"),
        ({"sign": "Stranger"}, "isv.SMS_SIGNATURE_ILLEGAL"),
        ({"template": "SMS_999999"}, "isv.SMS_TEMPLATE_ILLEGAL"),
        ({"params": "{not json"}, "isv.INVALID_JSON_PARAM"),
        ({"params": {"order_id": "A1"}}, "isv.TEMPLATE_MISSING_PARAMETERS"),
    ],
)
async def test_aliyun_business_errors_are_http_200_with_a_code(sim: Sim, overrides: dict, code: str) -> None:
    """Invalid numbers, signatures, templates and params are HTTP 200 with Aliyun's code, no send."""
    response = await aliyun_send(sim.http, **overrides)
    assert response.status_code == 200
    assert response.json()["Code"] == code
    assert await sim.ledger() == []


async def test_aliyun_query_send_details_finds_a_sent_message(sim: Sim) -> None:
    """QuerySendDetails finds a send by number and date, waiting first, delivered after its receipt."""
    # No receipt by itself: the test settles the message when it has seen it waiting, instead of
    # racing a receipt timer with its first query.
    await sim.configure(receipt_delay_ms=600_000)
    answer = (await aliyun_send(sim.http, "+8613800138000")).json()
    [sent] = sim.carrier.ledger
    business = {
        "PhoneNumber": "13800138000",
        # The day in China of the instant the carrier recorded: a clock read here can be a day later.
        "SendDate": sent.received_at.astimezone(CHINA_TIME).strftime("%Y%m%d"),
        "PageSize": "10",
        "CurrentPage": "1",
        "BizId": answer["BizId"],
    }

    async def query() -> dict:
        response = await sim.http.post("/aliyun/", params=aliyun_rpc_params("QuerySendDetails", business))
        return response.json()

    waiting = await query()
    assert waiting["Code"] == "OK" and waiting["TotalCount"] == 1
    [detail] = waiting["SmsSendDetailDTOs"]["SmsSendDetailDTO"]
    assert (detail["PhoneNum"], detail["SendStatus"], detail["OutId"]) == ("13800138000", 1, "out-1")
    assert detail["TemplateCode"] == "SMS_480003" and detail["Content"].startswith("【Nudge】")
    assert detail["ReceiveDate"] == ""
    sim.carrier.settle(sent)  # what the receipt does when its delay is over
    [detail] = (await query())["SmsSendDetailDTOs"]["SmsSendDetailDTO"]
    assert (detail["SendStatus"], detail["ErrCode"]) == (3, "DELIVERED")
    assert detail["ReceiveDate"]
