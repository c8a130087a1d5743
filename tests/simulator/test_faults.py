"""Fault injection: rate limits, configured faults, failures, latency and held answers."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.simulator.conftest import Sim
from tests.simulator.signed import (
    ALI_BACKUP_KEY,
    TWILIO_SID,
    TWILIO_TOKEN,
    aliyun_send,
    send_payload,
    tencent_request,
    twilio_send,
)

CN = "+8613800138000"


async def _send(
    sim: Sim, provider: str, to: str = CN, http: httpx.AsyncClient | None = None
) -> httpx.Response:
    """One send to ``to`` through ``provider``'s real API."""
    client = http or sim.http
    if provider == "aliyun":
        return await aliyun_send(client, to)
    if provider == "twilio":
        return await twilio_send(client, to)
    headers, body = tencent_request(sim.host, "SendSms", send_payload([to]))
    return await client.post("/tencent/", content=body, headers=headers)


def _outcome(provider: str, response: httpx.Response) -> tuple[int, str, str]:
    """HTTP status, the provider's code ("OK"/"Ok" when accepted) and its message."""
    data = response.json()
    if provider == "aliyun":
        return response.status_code, data["Code"], data["Message"]
    if provider == "twilio":
        if response.status_code == 201:
            return 201, "OK", ""
        return response.status_code, str(data["code"]), data["message"]
    body = data["Response"]
    if "Error" in body:
        return response.status_code, body["Error"]["Code"], body["Error"]["Message"]
    [status] = body["SendStatusSet"]
    return response.status_code, status["Code"], status["Message"]


@pytest.mark.parametrize(
    ("provider", "status", "code"),
    [("aliyun", 400, "Throttling.User"), ("twilio", 429, "20429"), ("tencent", 200, "RequestLimitExceeded")],
)
async def test_rate_limit_yields_the_providers_throttling_code(
    sim: Sim, provider: str, status: int, code: str
) -> None:
    """Above rate_limit_tps the next send gets the provider's throttling error and is not recorded."""
    await sim.configure(rate_limit_tps=1)
    first = await _send(sim, provider)
    second = await _send(sim, provider)
    assert _outcome(provider, first)[1] in ("OK", "Ok")
    assert _outcome(provider, second)[:2] == (status, code)
    assert len(await sim.ledger()) == 1


@pytest.mark.parametrize(
    ("provider", "code", "message", "status"),
    [
        ("aliyun", "isv.AMOUNT_NOT_ENOUGH", None, 200),
        ("aliyun", "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1", 200),
        ("aliyun", "isv.MOBILE_NUMBER_ILLEGAL", None, 200),
        ("aliyun", "Throttling.User", None, 400),
        ("twilio", "20429", None, 429),
        ("twilio", "21211", None, 400),
        ("twilio", "21610", None, 400),
        ("twilio", "20003", None, 401),
        ("tencent", "RequestLimitExceeded", None, 200),
        ("tencent", "FailedOperation.InsufficientBalanceInSmsPackage", None, 200),
        ("tencent", "LimitExceeded.PhoneNumberOneHourLimit", None, 200),
        ("tencent", "FailedOperation.PhoneNumberInBlacklist", None, 200),
    ],
)
async def test_fault_yields_its_code_in_the_providers_format(
    sim: Sim, provider: str, code: str, message: str | None, status: int
) -> None:
    """A matching fault answers its code with the provider's status and shape, and records nothing."""
    await sim.configure(faults=[{"provider": provider, "code": code, "message": message}])
    to = "+14155550100" if provider == "twilio" else CN
    response = await _send(sim, provider, to)
    got_status, got_code, got_message = _outcome(provider, response)
    assert (got_status, got_code) == (status, code)
    assert got_message
    if message:
        assert got_message == message
    if provider == "tencent" and code.startswith(("LimitExceeded.", "FailedOperation.PhoneNumber")):
        [item] = response.json()["Response"]["SendStatusSet"]
        assert (item["PhoneNumber"], item["Fee"], item["SerialNo"]) == (CN, 0, "")
    assert await sim.ledger() == []


async def test_fault_matches_numbers_in_e164_and_accounts(sim: Sim) -> None:
    """A fault limited to numbers or an account leaves other numbers and accounts alone."""
    await sim.configure(
        faults=[
            {"provider": "*", "code": "isv.AMOUNT_NOT_ENOUGH", "numbers": ["+8613800138001"]},
            {"provider": "aliyun", "code": "isv.OUT_OF_SERVICE", "account": ALI_BACKUP_KEY},
        ]
    )
    assert (await aliyun_send(sim.http, "13800138000")).json()["Code"] == "OK"
    assert (await aliyun_send(sim.http, "13800138001")).json()["Code"] == "isv.AMOUNT_NOT_ENOUGH"
    assert len(await sim.ledger()) == 1


async def test_fault_rate_zero_never_fires(sim: Sim) -> None:
    """A fault with rate 0 lets every send through."""
    await sim.configure(faults=[{"provider": "twilio", "code": "20429", "rate": 0}])
    assert (await twilio_send(sim.http)).status_code == 201


@pytest.mark.parametrize(
    ("provider", "status", "code"),
    [("aliyun", 500, "isp.SYSTEM_ERROR"), ("twilio", 500, "20500"), ("tencent", 200, "InternalError")],
)
async def test_failure_rate_yields_internal_errors(sim: Sim, provider: str, status: int, code: str) -> None:
    """failure_rate answers the provider's internal error and records nothing."""
    await sim.configure(failure_rate=1)
    assert _outcome(provider, await _send(sim, provider))[:2] == (status, code)
    assert await sim.ledger() == []


async def test_fixed_latency_delays_every_send(sim: Sim) -> None:
    """With a fixed latency of 100 ms a send takes at least that long."""
    await sim.configure(latency_ms=100, latency_distribution="fixed")
    started = time.monotonic()
    await twilio_send(sim.http)
    assert time.monotonic() - started >= 0.1


async def _find(sim: Sim, provider: str) -> list[Any]:
    """What the provider's own lookup API finds for the number the timed-out send went to."""
    if provider == "twilio":
        response = await sim.http.get(
            f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Messages.json",
            params={"To": "+14155550100"},
            auth=(TWILIO_SID, TWILIO_TOKEN),
        )
        return list(response.json()["messages"])
    pull = {"BeginTime": int(time.time()) - 60, "Offset": 0, "Limit": 10, "PhoneNumber": CN}
    headers, body = tencent_request(
        sim.host, "PullSmsSendStatusByPhoneNumber", {**pull, "SmsSdkAppId": "1400000001"}
    )
    response = await sim.http.post("/tencent/", content=body, headers=headers)
    return list(response.json()["Response"]["PullSmsSendStatusSet"])


@pytest.mark.parametrize("provider", ["twilio", "tencent"])
async def test_timeout_rate_holds_the_answer_but_records_the_send(sim: Sim, provider: str) -> None:
    """A held send times out on the client, yet is in the ledger and found by the provider's lookup."""
    await sim.configure(timeout_rate=1, timeout_s=10)
    to = "+14155550100" if provider == "twilio" else CN
    async with httpx.AsyncClient(base_url=sim.url, timeout=0.3, trust_env=False) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await _send(sim, provider, to, http=impatient)
    assert [e["to"] for e in await sim.ledger(provider=provider)] == [to]
    assert len(await _find(sim, provider)) == 1
