"""Requests signed as the official Aliyun SDK signs them (alibabacloud-tea-openapi, ACS3): every
header it sends is in SignedHeaders, ``accept`` and ``user-agent`` too. The signer here is written
from Aliyun's v3 document, not taken from ``nudge.signing``."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from tests.simulator.conftest import Sim
from tests.simulator.signed import ALI_BACKUP_KEY, ALI_BACKUP_SECRET, send_sms_params


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def sdk_request(host: str, query: dict[str, str], *, drop_from_signed: str | None = None) -> dict[str, str]:
    """The headers of a SendSms as the SDK sends it, signed over all of them (v3 document)."""
    payload = hashlib.sha256(b"").hexdigest()
    headers = {
        "host": host,
        "x-acs-action": "SendSms",
        "x-acs-version": "2017-05-25",
        "x-acs-date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": payload,
        "accept": "application/json",
        "user-agent": "AlibabaCloud (Linux; x86_64) Python/3.11 Core/0.3.0 TeaDSL/1",
    }
    signed = sorted(name for name in headers if name != drop_from_signed)
    canonical = "\n".join(
        [
            "POST",
            "/",
            "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items())),
            "".join(f"{name}:{headers[name].strip()}\n" for name in signed),
            ";".join(signed),
            payload,
        ]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    signature = hmac.new(ALI_BACKUP_SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={ALI_BACKUP_KEY},SignedHeaders={';'.join(signed)},Signature={signature}"
    )
    return headers


async def test_a_request_signed_over_every_header_the_sdk_sends_is_accepted(sim: Sim) -> None:
    """The SDK lists accept and user-agent in SignedHeaders: the simulator verifies over exactly the
    listed headers, so the SDK's request is accepted (it was SignatureDoesNotMatch)."""
    query = send_sms_params()
    response = await sim.http.post("/aliyun/", params=query, headers=sdk_request(sim.host, query))
    assert response.json()["Code"] == "OK", response.text
    assert len(await sim.ledger()) == 1


async def test_a_signed_header_changed_in_transit_is_refused(sim: Sim) -> None:
    """A header the request signed (user-agent), changed after signing: SignatureDoesNotMatch."""
    query = send_sms_params()
    headers = sdk_request(sim.host, query)
    headers["user-agent"] = "something-else/1.0"
    response = await sim.http.post("/aliyun/", params=query, headers=headers)
    assert (response.status_code, response.json()["Code"]) == (400, "SignatureDoesNotMatch")
    assert await sim.ledger() == []


@pytest.mark.parametrize("required", ["x-acs-date", "x-acs-signature-nonce", "host"])
async def test_a_request_that_leaves_a_required_header_unsigned_is_refused(sim: Sim, required: str) -> None:
    """Signing only what it likes is not enough: a request whose SignedHeaders leaves out a header
    Aliyun requires to be signed is refused as an incomplete signature, naming it."""
    query = send_sms_params()
    headers = sdk_request(sim.host, query, drop_from_signed=required)
    response = await sim.http.post("/aliyun/", params=query, headers=headers)
    assert (response.status_code, response.json()["Code"]) == (400, "IncompleteSignature")
    assert required in response.json()["Message"]
    assert await sim.ledger() == []
