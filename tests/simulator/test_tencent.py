"""Tencent Cloud SMS at /tencent/: TC3 signing, SendSms and PullSmsSendStatusByPhoneNumber."""

from __future__ import annotations

import re

import pytest

from tests.simulator.conftest import Sim
from tests.simulator.signed import TC_ID, send_payload, tencent_call, tencent_request


async def test_tencent_send_sms_returns_status_set_and_ledger(sim: Sim) -> None:
    """SendSms answers a SendStatusSet item per number and records the positional body."""
    numbers = ["+8613800138000", "+8613800138001"]
    response = await tencent_call(sim.http, sim.host, "SendSms", send_payload(numbers))
    statuses = response["SendStatusSet"]
    assert response["RequestId"]
    assert [s["PhoneNumber"] for s in statuses] == numbers
    for status in statuses:
        assert (status["Code"], status["Message"], status["IsoCode"], status["Fee"]) == (
            "Ok",
            "send success",
            "CN",
            1,
        )
        assert re.fullmatch(r"2433:\d+", status["SerialNo"]) and status["SessionContext"] == "session-1"
    entries = await sim.ledger(provider="tencent")
    assert [e["provider_id"] for e in entries] == [s["SerialNo"] for s in statuses]
    assert entries[0]["body"] == "【Nudge】Payment received: order A1, total 9.90. Thank you!"
    assert entries[0]["params"] == {"order_id": "A1", "amount": "9.90"}
    assert (entries[0]["account"], entries[0]["template_code"], entries[0]["client_ref"]) == (
        TC_ID,
        "1480003",
        "session-1",
    )


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"secret_key": "wrong"}, "AuthFailure.SignatureFailure"),
        ({"secret_id": "AKIDNobody"}, "AuthFailure.SecretIdNotFound"),
        ({"clock_skew_s": -400}, "AuthFailure.SignatureExpire"),
    ],
)
async def test_tencent_bad_credentials_are_auth_failures(sim: Sim, kwargs: dict, code: str) -> None:
    """A wrong key, unknown SecretId or stale timestamp is an AuthFailure in Response.Error, HTTP 200."""
    response = await tencent_call(sim.http, sim.host, "SendSms", send_payload(), **kwargs)
    assert response["Error"]["Code"] == code
    assert await sim.ledger() == []


async def test_tencent_tampered_body_fails_signature(sim: Sim) -> None:
    """Changing the body after signing is AuthFailure.SignatureFailure."""
    headers, _ = tencent_request(sim.host, "SendSms", send_payload())
    body = send_payload(["+8613900139000"])
    response = await sim.http.post("/tencent/", json=body, headers=headers)
    assert response.json()["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"TemplateId": "999"}, "FailedOperation.TemplateIncorrectOrUnapproved"),
        ({"SignName": "Stranger"}, "FailedOperation.SignatureIncorrectOrUnapproved"),
        ({"TemplateParamSet": ["A1"]}, "InvalidParameterValue.TemplateParameterFormatError"),
        ({"SmsSdkAppId": "1400999999"}, "UnauthorizedOperation.SmsSdkAppIdVerifyFail"),
        ({"PhoneNumberSet": ["+8613800138000"] * 201}, "LimitExceeded.PhoneNumberCountLimit"),
    ],
)
async def test_tencent_invalid_requests_are_request_errors(sim: Sim, payload: dict, code: str) -> None:
    """Unapproved templates or signatures, wrong param counts and app ids are request-level errors."""
    response = await tencent_call(sim.http, sim.host, "SendSms", {**send_payload(), **payload})
    assert response["Error"]["Code"] == code
    assert await sim.ledger() == []


async def test_tencent_invalid_number_is_reported_per_number(sim: Sim) -> None:
    """A number that is not a mobile fails on its own; the others are sent."""
    response = await tencent_call(sim.http, sim.host, "SendSms", send_payload(["+8612345", "+8613800138000"]))
    bad, good = response["SendStatusSet"]
    assert (bad["Code"], bad["SerialNo"], bad["Fee"]) == ("InvalidParameterValue.IncorrectPhoneNumber", "", 0)
    assert good["Code"] == "Ok"
    assert [e["to"] for e in await sim.ledger()] == ["+8613800138000"]


async def test_tencent_pull_finds_pending_then_delivered(sim: Sim) -> None:
    """PullSmsSendStatusByPhoneNumber lists a send at once (ReportStatus "") and SUCCESS once reported."""
    # No receipt by itself: the test settles the message when it has seen it pending, instead of
    # racing a receipt timer with its first pull.
    await sim.configure(receipt_delay_ms=600_000)
    sent = await tencent_call(sim.http, sim.host, "SendSms", send_payload())
    serial = sent["SendStatusSet"][0]["SerialNo"]
    [recorded] = sim.carrier.ledger
    pull = {
        "BeginTime": int(recorded.received_at.timestamp()) - 5,
        "Offset": 0,
        "Limit": 10,
        "PhoneNumber": "+8613800138000",
        "SmsSdkAppId": send_payload()["SmsSdkAppId"],
    }
    [pending] = (await tencent_call(sim.http, sim.host, "PullSmsSendStatusByPhoneNumber", pull))[
        "PullSmsSendStatusSet"
    ]
    assert (pending["SerialNo"], pending["ReportStatus"], pending["SessionContext"]) == (
        serial,
        "",
        "session-1",
    )
    assert (pending["CountryCode"], pending["SubscriberNumber"]) == ("86", "13800138000")
    sim.carrier.settle(recorded)  # what the receipt does when its delay is over
    [done] = (await tencent_call(sim.http, sim.host, "PullSmsSendStatusByPhoneNumber", pull))[
        "PullSmsSendStatusSet"
    ]
    assert done["ReportStatus"] == "SUCCESS" and isinstance(done["UserReceiveTime"], int)
