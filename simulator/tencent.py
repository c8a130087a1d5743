"""Tencent Cloud SMS 2021-01-11, mounted at ``/tencent/``: SendSms and PullSmsSendStatusByPhoneNumber.

API 3.0 style: ``POST /`` with a JSON body, the action in ``X-TC-Action`` and a TC3-HMAC-SHA256
``Authorization``. Every answer is HTTP 200; errors sit in ``Response.Error``, and some send errors
are reported per number in ``SendStatusSet``. Status reports (JSON array) and replies (one JSON
object) are posted to ``tencent_report_url`` and ``tencent_reply_url``.
"""

from __future__ import annotations

import hmac
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from nudge.segments import count_segments
from nudge.signing import parse_tc3_authorization, tencent_tc3_signature
from nudge.templates import Template
from simulator.callbacks import Callback
from simulator.carrier import Carrier, CarrierDep
from simulator.codes import TENCENT_MESSAGES, CarrierError, tencent_per_number
from simulator.config import Fault, SimConfig, TencentAccount
from simulator.ledger import LedgerEntry, china_time, new_id, now
from simulator.numbers import is_mobile, iso_region, same_number, split
from simulator.templates import approved_template, china_segments, fill_positional

VERSION = "2021-01-11"
SERVICE = "sms"
MAX_SKEW_S = 300
MAX_NUMBERS = 200
MAX_PULL = 100
FAILED_CODE = "MK:0001"

router = APIRouter(prefix="/tencent", tags=["tencent"])


class TencentError(CarrierError):
    """A request-level error: ``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``, HTTP 200."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or TENCENT_MESSAGES.get(code, code)

    def response(self) -> JSONResponse:
        error = {"Code": self.code, "Message": self.message}
        return JSONResponse({"Response": {"Error": error, "RequestId": str(uuid.uuid4())}})


def _answer(**fields: Any) -> JSONResponse:
    return JSONResponse({"Response": {**fields, "RequestId": str(uuid.uuid4())}})


def _authenticate(request: Request, carrier: Carrier, body: bytes) -> tuple[str, TencentAccount]:
    try:
        fields = parse_tc3_authorization(request.headers.get("authorization", ""))
    except ValueError:
        raise TencentError("AuthFailure.InvalidAuthorization") from None
    secret_id, _, scope = fields["Credential"].partition("/")
    account = carrier.config.tencent_accounts.get(secret_id)
    if account is None:
        raise TencentError("AuthFailure.SecretIdNotFound")
    try:
        timestamp = int(request.headers.get("x-tc-timestamp", ""))
    except ValueError:
        raise TencentError("MissingParameter", "缺少参数错误：X-TC-Timestamp。") from None
    if abs(datetime.now(UTC).timestamp() - timestamp) > MAX_SKEW_S:
        raise TencentError("AuthFailure.SignatureExpire")
    expected = tencent_tc3_signature(
        secret_key=account.secret_key,
        service=SERVICE,
        host=request.headers.get("host", ""),
        timestamp=timestamp,
        payload=body,
        content_type=request.headers.get("content-type", ""),
    )
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    if scope != f"{day}/{SERVICE}/tc3_request" or not hmac.compare_digest(
        expected.encode(), fields["Signature"].encode()
    ):
        raise TencentError("AuthFailure.SignatureFailure")
    return secret_id, account


def _app_id(payload: dict[str, Any], account: TencentAccount) -> None:
    if str(payload.get("SmsSdkAppId", "")) != account.sdk_app_id:
        raise TencentError("UnauthorizedOperation.SmsSdkAppIdVerifyFail")


# ----- SendSms ----------------------------------------------------------------------------------


def _numbers(payload: dict[str, Any]) -> list[str]:
    numbers = payload.get("PhoneNumberSet")
    if numbers is None:
        raise TencentError("MissingParameter", "缺少参数错误：PhoneNumberSet。")
    if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers) or not numbers:
        raise TencentError("InvalidParameterValue.IncorrectPhoneNumber")
    if len(numbers) > MAX_NUMBERS:
        raise TencentError("LimitExceeded.PhoneNumberCountLimit")
    return numbers


def _status(
    number: str, code: str, message: str, session: str, serial: str = "", fee: int = 0
) -> dict[str, Any]:
    return {
        "SerialNo": serial,
        "PhoneNumber": number,
        "Fee": fee,
        "SessionContext": session,
        "Code": code,
        "Message": message,
        "IsoCode": iso_region(number) or "CN",
    }


def _fault_hits(fault: Fault | None, number: str) -> bool:
    """Whether a per-number fault applies to ``number``: all numbers unless the fault lists some."""
    if fault is None:
        return False
    return not fault.numbers or any(same_number(number, n) for n in fault.numbers)


def _validated(
    carrier: Carrier, account: TencentAccount, payload: dict[str, Any]
) -> tuple[Template, str, list[str]]:
    """The approved template, signature and positional params of a SendSms, or a request error."""
    _app_id(payload, account)
    template = approved_template("tencent", str(payload.get("TemplateId", "")), carrier.config)
    if template is None:
        raise TencentError("FailedOperation.TemplateIncorrectOrUnapproved")
    sign = payload.get("SignName")
    if not isinstance(sign, str) or sign not in account.signatures:
        raise TencentError("FailedOperation.SignatureIncorrectOrUnapproved")
    params = payload.get("TemplateParamSet") or []
    if (
        not isinstance(params, list)
        or not all(isinstance(p, str) for p in params)
        or len(params) != len(template.ordered_variables)
    ):
        raise TencentError("InvalidParameterValue.TemplateParameterFormatError")
    return template, sign, params


def _entry(
    *,
    number: str,
    secret_id: str,
    template: Template,
    sign: str,
    params: list[str],
    session: str,
    received_at: datetime,
) -> LedgerEntry:
    body = f"【{sign}】{fill_positional(template, params)}"
    return LedgerEntry(
        id=new_id(),
        client_ref=session,
        to=number,
        sender=sign,
        body=body,
        segments=china_segments(body) if number.startswith("+86") else count_segments(body),
        received_at=received_at,
        provider="tencent",
        account=secret_id,
        signature=sign,
        template_code=template.provider_codes.get("tencent", ""),
        params=dict(zip(template.ordered_variables, params, strict=True)),
        provider_id=f"2433:{random.randrange(10**19, 10**20)}",
    )


async def send_sms(
    carrier: Carrier, request: Request, secret_id: str, account: TencentAccount, payload: dict[str, Any]
) -> JSONResponse:
    """Send to each number; numbers that fail on their own are reported in their status item."""
    received_at = now()
    await carrier.latency()
    if not carrier.allow("tencent", secret_id):
        raise TencentError("RequestLimitExceeded")
    if carrier.chance(carrier.config.failure_rate):
        raise TencentError("InternalError")
    numbers = _numbers(payload)
    template, sign, params = _validated(carrier, account, payload)
    fault = carrier.pick_fault("tencent", secret_id, numbers)
    if fault is not None and not tencent_per_number(fault.code):
        raise TencentError(fault.code, fault.message)
    session = str(payload.get("SessionContext") or "")
    statuses, entries = [], []
    for number in numbers:
        if not is_mobile(number):
            code = "InvalidParameterValue.IncorrectPhoneNumber"
            statuses.append(_status(number, code, TENCENT_MESSAGES[code], session))
        elif fault is not None and _fault_hits(fault, number):
            message = fault.message or TENCENT_MESSAGES.get(fault.code, fault.code)
            statuses.append(_status(number, fault.code, message, session))
        else:
            entry = _entry(
                number=number,
                secret_id=secret_id,
                template=template,
                sign=sign,
                params=params,
                session=session,
                received_at=received_at,
            )
            entries.append(entry)
            statuses.append(_status(number, "Ok", "send success", session, entry.provider_id, entry.segments))
    early = carrier.chance(carrier.config.receipt_reorder_rate)
    await carrier.commit(request, entries, receipts, early=early)
    return _answer(SendStatusSet=statuses)


# ----- PullSmsSendStatusByPhoneNumber -----------------------------------------------------------


def _pull_item(entry: LedgerEntry) -> dict[str, Any]:
    country, subscriber = split(entry.to)
    report = {"delivered": ("SUCCESS", "DELIVRD"), "undelivered": ("FAIL", FAILED_CODE)}
    status, description = report.get(entry.status, ("", ""))
    return {
        "UserReceiveTime": int(entry.reported_at.timestamp()) if entry.reported_at else None,
        "CountryCode": country,
        "SubscriberNumber": subscriber,
        "PhoneNumber": entry.to,
        "SerialNo": entry.provider_id,
        "ReportStatus": status,
        "Description": description,
        "SessionContext": entry.client_ref,
    }


async def pull_status(
    carrier: Carrier, request: Request, secret_id: str, account: TencentAccount, payload: dict[str, Any]
) -> JSONResponse:
    """Every message to one number since ``BeginTime``, including those still awaiting a receipt."""
    _app_id(payload, account)
    try:
        begin = int(payload["BeginTime"])
        end = int(payload["EndTime"]) if payload.get("EndTime") is not None else None
        offset = int(payload.get("Offset", 0))
        limit = int(payload.get("Limit", MAX_PULL))
        number = str(payload["PhoneNumber"])
    except KeyError as exc:
        raise TencentError("MissingParameter", f"缺少参数错误：{exc.args[0]}。") from None
    except (TypeError, ValueError):
        raise TencentError("InvalidParameter") from None
    if not (0 < limit <= MAX_PULL and offset >= 0):
        raise TencentError("InvalidParameterValue", "Limit 取值范围为 1-100。")
    apps = {sid for sid, a in carrier.config.tencent_accounts.items() if a.sdk_app_id == account.sdk_app_id}
    found = [
        e
        for e in carrier.sent_to(number)
        if e.provider == "tencent"
        and e.account in apps
        and e.received_at.timestamp() >= begin
        and (end is None or e.received_at.timestamp() <= end)
    ]
    return _answer(PullSmsSendStatusSet=[_pull_item(e) for e in found[offset : offset + limit]])


Action = Callable[[Carrier, Request, str, TencentAccount, dict[str, Any]], Awaitable[JSONResponse]]
ACTIONS: dict[str, Action] = {"SendSms": send_sms, "PullSmsSendStatusByPhoneNumber": pull_status}


@router.post("/")
@router.post("", include_in_schema=False)
async def api(request: Request, carrier: CarrierDep) -> JSONResponse:
    """Every action: which one is in ``X-TC-Action``."""
    body = await request.body()
    secret_id, account = _authenticate(request, carrier, body)
    if request.headers.get("x-tc-version") != VERSION:
        raise TencentError("NoSuchVersion")
    action = ACTIONS.get(request.headers.get("x-tc-action", ""))
    if action is None:
        raise TencentError("InvalidAction")
    try:
        payload = json.loads(body)
    except ValueError:
        raise TencentError("FailedOperation.JsonParseFail") from None
    if not isinstance(payload, dict):
        raise TencentError("FailedOperation.JsonParseFail")
    return await action(carrier, request, secret_id, account, payload)


# ----- callbacks --------------------------------------------------------------------------------


def receipts(entry: LedgerEntry, config: SimConfig) -> list[Callback]:
    """The status report: a JSON array with one item, posted to ``tencent_report_url``."""
    if not config.tencent_report_url:
        return []
    delivered = entry.status == "delivered"
    country, subscriber = split(entry.to)
    item = {
        "user_receive_time": china_time(entry.reported_at or now()),
        "nationcode": country,
        "mobile": subscriber,
        "report_status": "SUCCESS" if delivered else "FAIL",
        "errmsg": "DELIVRD" if delivered else FAILED_CODE,
        "description": "用户短信送达成功" if delivered else "用户短信未送达",
        "sid": entry.provider_id,
    }
    return [Callback.json(config.tencent_report_url, [item])]


async def post_reply(carrier: Carrier, url: str, *, sender: str, to: str, text: str) -> int:
    """A reply from ``sender`` to signature ``to``: one JSON object, as Tencent's docs show it."""
    country, subscriber = split(sender)
    reply = {
        "extend": "",
        "mobile": subscriber,
        "nationcode": country,
        "sign": to,
        "text": text,
        "time": int(now().timestamp()),
    }
    return await carrier.post_once(Callback.json(url, reply))
