"""Requests to the simulated providers, signed by hand with ``nudge.signing`` as the adapters do."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from nudge.routes import (
    DEV_ALIYUN_KEYS,
    DEV_TENCENT_APP_ID,
    DEV_TENCENT_KEYS,
    DEV_TWILIO_ACCOUNTS,
    DEV_TWILIO_NUMBER,
)
from nudge.signing import aliyun_acs3_authorization, aliyun_rpc_signature, tencent_tc3_authorization

((ALI_KEY, ALI_SECRET), (ALI_BACKUP_KEY, ALI_BACKUP_SECRET)) = DEV_ALIYUN_KEYS.items()
((TWILIO_SID, TWILIO_TOKEN),) = DEV_TWILIO_ACCOUNTS.items()
((TC_ID, TC_KEY),) = DEV_TENCENT_KEYS.items()
TWILIO_FROM = DEV_TWILIO_NUMBER
PAYMENT = {"order_id": "A1", "amount": "9.90"}
"""Variables of the built-in ``payment_success`` template (Aliyun SMS_480003, Tencent 1480003)."""


def _aliyun_time(offset: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + offset).strftime("%Y-%m-%dT%H:%M:%SZ")


def aliyun_rpc_params(
    action: str,
    business: dict[str, str],
    *,
    key: str = ALI_KEY,
    secret: str = ALI_SECRET,
    method: str = "POST",
    nonce: str | None = None,
    clock_skew: timedelta = timedelta(),
) -> dict[str, str]:
    """Common + business parameters with an RPC (v2) ``Signature`` over all of them."""
    params = {
        "AccessKeyId": key,
        "Action": action,
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": nonce or uuid.uuid4().hex,
        "SignatureVersion": "1.0",
        "Timestamp": _aliyun_time(clock_skew),
        "Version": "2017-05-25",
        **business,
    }
    return {**params, "Signature": aliyun_rpc_signature(params, secret, method=method)}


def send_sms_params(
    numbers: str = "13800138000",
    *,
    sign: str = "Nudge",
    template: str = "SMS_480003",
    params: dict[str, Any] | str | None = None,
    out_id: str | None = "out-1",
) -> dict[str, str]:
    business = {
        "PhoneNumbers": numbers,
        "SignName": sign,
        "TemplateCode": template,
        "TemplateParam": params if isinstance(params, str) else json.dumps(params or PAYMENT),
    }
    if out_id is not None:
        business["OutId"] = out_id
    return business


async def aliyun_send(http: httpx.AsyncClient, numbers: str = "13800138000", **kwargs: Any) -> httpx.Response:
    """SendSms, every parameter in the query string as the SDK sends it."""
    return await http.post(
        "/aliyun/", params=aliyun_rpc_params("SendSms", send_sms_params(numbers, **kwargs))
    )


def aliyun_acs3_request(
    host: str,
    action: str,
    query: dict[str, str],
    form: dict[str, str] | None = None,
    *,
    key: str = ALI_BACKUP_KEY,
    secret: str = ALI_BACKUP_SECRET,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of an ACS3-HMAC-SHA256 ``POST /``."""
    body = urlencode(form).encode() if form else b""
    payload_sha256 = hashlib.sha256(body).hexdigest()
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": "2017-05-25",
        "x-acs-date": _aliyun_time(),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": payload_sha256,
    }
    if form:
        headers["content-type"] = "application/x-www-form-urlencoded"
    headers["Authorization"] = aliyun_acs3_authorization(
        access_key_id=key,
        secret=secret,
        method="POST",
        path="/",
        query=query,
        headers=headers,
        payload_sha256=payload_sha256,
    )
    return headers, body


async def twilio_send(
    http: httpx.AsyncClient,
    to: str = "+14155550100",
    *,
    body: str = "Your order shipped",
    token: str = TWILIO_TOKEN,
    **extra: str,
) -> httpx.Response:
    """Create a message with HTTP Basic auth, as the Twilio SDK does."""
    form = {"To": to, "From": TWILIO_FROM, "Body": body, **extra}
    return await http.post(
        f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Messages.json", data=form, auth=(TWILIO_SID, token)
    )


def tencent_request(
    host: str,
    action: str,
    payload: dict[str, Any],
    *,
    secret_id: str = TC_ID,
    secret_key: str = TC_KEY,
    clock_skew_s: int = 0,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a TC3-signed API 3.0 request."""
    body = json.dumps(payload).encode()
    timestamp = int(time.time()) + clock_skew_s
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Version": "2021-01-11",
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Region": "ap-guangzhou",
        "Authorization": tencent_tc3_authorization(
            secret_id=secret_id,
            secret_key=secret_key,
            service="sms",
            host=host,
            timestamp=timestamp,
            payload=body,
        ),
    }
    return headers, body


def send_payload(
    numbers: list[str] | None = None,
    *,
    template: str = "1480003",
    params: list[str] | None = None,
    sign: str = "Nudge",
    session: str = "session-1",
) -> dict[str, Any]:
    return {
        "PhoneNumberSet": numbers or ["+8613800138000"],
        "SmsSdkAppId": DEV_TENCENT_APP_ID,
        "TemplateId": template,
        "SignName": sign,
        "TemplateParamSet": params if params is not None else list(PAYMENT.values()),
        "SessionContext": session,
    }


async def tencent_call(
    http: httpx.AsyncClient, host: str, action: str, payload: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    """POST a signed action and return its ``Response`` object."""
    headers, body = tencent_request(host, action, payload, **kwargs)
    response = await http.post("/tencent/", content=body, headers=headers)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()["Response"]
    return result
