"""Aliyun Dysms 2017-05-25, mounted at ``/aliyun/``: SendSms, SendBatchSms and QuerySendDetails.

Requests are RPC style (``POST /`` or ``GET /``) signed with RPC v2 or ACS3 (``aliyun_auth``).
Business rejections are HTTP 200 with ``Code != "OK"``. Delivery receipts (SmsReport) and replies
(SmsUp) are JSON arrays posted to ``aliyun_report_url`` and ``aliyun_up_url``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from nudge.errors import TemplateError
from nudge.templates import Template
from simulator.aliyun_auth import AliyunError, Call, authenticate, missing, request_id
from simulator.callbacks import Callback
from simulator.carrier import Carrier, CarrierDep
from simulator.config import SimConfig
from simulator.ledger import CHINA_TIME, LedgerEntry, china_time, new_id, now
from simulator.numbers import mainland_national
from simulator.templates import approved_template, china_segments

router = APIRouter(prefix="/aliyun", tags=["aliyun"])

MAX_NUMBERS = 1000
MAX_BATCH = 100
FAILED_CODE = "MK:0001"
SEND_STATUS = {"delivered": 3, "undelivered": 2}
"""QuerySendDetails' SendStatus: 1 waiting for a receipt, 2 failed, 3 delivered."""


def _ok(**fields: Any) -> JSONResponse:
    return JSONResponse({"Code": "OK", "Message": "OK", "RequestId": request_id(), **fields})


def _biz_id() -> str:
    return f"{random.randrange(10**17, 10**18)}^0"


# ----- validation -------------------------------------------------------------------------------


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise missing(name)
    return value


def _national(number: Any) -> str:
    national = mainland_national(number) if isinstance(number, str) else None
    if national is None:
        raise AliyunError("isv.MOBILE_NUMBER_ILLEGAL")
    return national


def _signature(carrier: Carrier, access_key_id: str, sign: Any) -> str:
    if not isinstance(sign, str) or sign not in carrier.config.aliyun_accounts[access_key_id].signatures:
        raise AliyunError("isv.SMS_SIGNATURE_ILLEGAL")
    return sign


def _template(carrier: Carrier, code: str) -> Template:
    template = approved_template("aliyun", code, carrier.config)
    if template is None:
        raise AliyunError("isv.SMS_TEMPLATE_ILLEGAL")
    return template


def _values(raw: Any) -> dict[str, Any]:
    """TemplateParam: a JSON object, as a string (SendSms) or already parsed (SendBatchSms)."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise AliyunError("isv.INVALID_JSON_PARAM") from None
    if not isinstance(raw, dict):
        raise AliyunError("isv.INVALID_JSON_PARAM")
    return raw


def _render(template: Template, values: dict[str, Any]) -> str:
    if template.variables - values.keys():
        raise AliyunError("isv.TEMPLATE_MISSING_PARAMETERS")
    try:
        return template.render(values)
    except TemplateError:
        raise AliyunError("isv.TEMPLATE_PARAMS_ILLEGAL") from None


def _json_list(params: dict[str, str], name: str) -> list[Any]:
    try:
        value = json.loads(_required(params, name))
    except ValueError:
        raise AliyunError("isv.INVALID_JSON_PARAM") from None
    if not isinstance(value, list):
        raise AliyunError("isv.INVALID_JSON_PARAM")
    return value


async def _gate(carrier: Carrier, access_key_id: str) -> None:
    """Latency, flow control and simulated platform failures, before the send is looked at."""
    await carrier.latency()
    if not carrier.allow("aliyun", access_key_id):
        raise AliyunError("Throttling.User")
    if carrier.chance(carrier.config.failure_rate):
        raise AliyunError("isp.SYSTEM_ERROR")


def _fault(carrier: Carrier, access_key_id: str, nationals: list[str]) -> None:
    fault = carrier.pick_fault("aliyun", access_key_id, ["+86" + n for n in nationals])
    if fault is not None:
        raise AliyunError(fault.code, fault.message, status=fault.http_status)


# ----- actions ----------------------------------------------------------------------------------


def _entry(
    call: Call,
    *,
    national: str,
    sign: str,
    template: Template,
    values: dict[str, Any],
    biz_id: str,
    received_at: datetime,
) -> LedgerEntry:
    body = f"【{sign}】{_render(template, values)}"
    return LedgerEntry(
        id=new_id(),
        client_ref=call.params.get("OutId", ""),
        to="+86" + national,
        sender=sign,
        body=body,
        segments=china_segments(body),
        received_at=received_at,
        provider="aliyun",
        account=call.access_key_id,
        signature=sign,
        template_code=template.provider_codes.get("aliyun", ""),
        params=values,
        provider_id=biz_id,
    )


async def _accept(carrier: Carrier, request: Request, entries: list[LedgerEntry]) -> JSONResponse:
    early = carrier.chance(carrier.config.receipt_reorder_rate)
    await carrier.commit(request, entries, receipts, early=early)
    return _ok(BizId=entries[0].provider_id)


async def send_sms(carrier: Carrier, request: Request, call: Call, received_at: datetime) -> JSONResponse:
    await _gate(carrier, call.access_key_id)
    numbers = _required(call.params, "PhoneNumbers").split(",")
    if len(numbers) > MAX_NUMBERS:
        raise AliyunError("isv.MOBILE_COUNT_OVER_LIMIT")
    nationals = [_national(n) for n in numbers]
    sign = _signature(carrier, call.access_key_id, _required(call.params, "SignName"))
    template = _template(carrier, _required(call.params, "TemplateCode"))
    values = _values(call.params.get("TemplateParam"))
    _render(template, values)
    _fault(carrier, call.access_key_id, nationals)
    biz_id = _biz_id()
    entries = [
        _entry(
            call,
            national=n,
            sign=sign,
            template=template,
            values=values,
            biz_id=biz_id,
            received_at=received_at,
        )
        for n in nationals
    ]
    return await _accept(carrier, request, entries)


async def send_batch_sms(
    carrier: Carrier, request: Request, call: Call, received_at: datetime
) -> JSONResponse:
    await _gate(carrier, call.access_key_id)
    numbers = _json_list(call.params, "PhoneNumberJson")
    signs = _json_list(call.params, "SignNameJson")
    template = _template(carrier, _required(call.params, "TemplateCode"))
    params = _json_list(call.params, "TemplateParamJson") if "TemplateParamJson" in call.params else None
    if params is None:
        params = [{}] * len(numbers)
    if len(numbers) > MAX_BATCH:
        raise AliyunError("isv.MOBILE_COUNT_OVER_LIMIT")
    if not numbers or len(signs) != len(numbers) or len(params) != len(numbers):
        raise AliyunError("isv.INVALID_PARAMETERS")
    checked = []
    for number, sign, raw in zip(numbers, signs, params, strict=True):
        national = _national(number)
        signature = _signature(carrier, call.access_key_id, sign)
        values = _values(raw)
        _render(template, values)
        checked.append((national, signature, values))
    _fault(carrier, call.access_key_id, [national for national, _, _ in checked])
    biz_id = _biz_id()
    entries = [
        _entry(call, national=n, sign=s, template=template, values=v, biz_id=biz_id, received_at=received_at)
        for n, s, v in checked
    ]
    return await _accept(carrier, request, entries)


def _detail(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "PhoneNum": entry.to.removeprefix("+86"),
        "SendStatus": SEND_STATUS.get(entry.status, 1),
        "ErrCode": {"delivered": "DELIVERED", "undelivered": FAILED_CODE}.get(entry.status, ""),
        "TemplateCode": entry.template_code,
        "Content": entry.body,
        "SendDate": china_time(entry.received_at),
        "ReceiveDate": china_time(entry.reported_at) if entry.reported_at else "",
        "OutId": entry.client_ref,
    }


async def query_send_details(
    carrier: Carrier, request: Request, call: Call, received_at: datetime
) -> JSONResponse:
    national = _national(_required(call.params, "PhoneNumber"))
    send_date = _required(call.params, "SendDate")
    try:
        page_size = int(_required(call.params, "PageSize"))
        page = int(_required(call.params, "CurrentPage"))
        datetime.strptime(send_date, "%Y%m%d")
    except ValueError:
        raise AliyunError("isv.INVALID_PARAMETERS") from None
    if not (1 <= page_size <= 50 and page >= 1):
        raise AliyunError("isv.INVALID_PARAMETERS")
    biz_id = call.params.get("BizId")
    found = [
        entry
        for entry in carrier.sent_to("+86" + national)
        if entry.provider == "aliyun"
        and entry.account == call.access_key_id
        and entry.received_at.astimezone(CHINA_TIME).strftime("%Y%m%d") == send_date
        and (not biz_id or entry.provider_id == biz_id)
    ]
    shown = found[(page - 1) * page_size : page * page_size]
    return _ok(TotalCount=len(found), SmsSendDetailDTOs={"SmsSendDetailDTO": [_detail(e) for e in shown]})


Action = Callable[[Carrier, Request, Call, datetime], Awaitable[JSONResponse]]
ACTIONS: dict[str, Action] = {
    "SendSms": send_sms,
    "SendBatchSms": send_batch_sms,
    "QuerySendDetails": query_send_details,
}


@router.api_route("/", methods=["GET", "POST"])
@router.api_route("", methods=["GET", "POST"], include_in_schema=False)
async def rpc(request: Request, carrier: CarrierDep) -> JSONResponse:
    """Every Dysms action: which one is in ``Action`` (RPC) or ``x-acs-action`` (ACS3)."""
    received_at = now()  # when the request arrived, before the simulated latency
    call = authenticate(request, carrier, await request.body())
    action = ACTIONS.get(call.action)
    if action is None:
        raise AliyunError(
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
            status=404,
        )
    return await action(carrier, request, call, received_at)


# ----- callbacks --------------------------------------------------------------------------------


def receipts(entry: LedgerEntry, config: SimConfig) -> list[Callback]:
    """SmsReport: a JSON array with one item for the message, posted to ``aliyun_report_url``."""
    if not config.aliyun_report_url:
        return []
    delivered = entry.status == "delivered"
    item = {
        "phone_number": entry.to.removeprefix("+86"),
        "send_time": china_time(entry.received_at),
        "report_time": china_time(entry.reported_at or now()),
        "success": delivered,
        "err_code": "DELIVERED" if delivered else FAILED_CODE,
        "err_msg": "用户接收成功" if delivered else "用户接收失败",
        "sms_size": str(entry.segments),
        "biz_id": entry.provider_id,
        "out_id": entry.client_ref or None,
    }
    return [Callback.json(config.aliyun_report_url, [item])]


def _dest_code(config: SimConfig, sign: str) -> str:
    """The upstream extension code the console assigned to a signature: its place among them."""
    signatures = list(dict.fromkeys(s for a in config.aliyun_accounts.values() for s in a.signatures))
    return f"{signatures.index(sign) + 1:02d}" if sign in signatures else ""


async def post_reply(carrier: Carrier, url: str, *, sender: str, to: str, text: str) -> int:
    """SmsUp: the customer at ``sender`` answered ``text`` to signature ``to``."""
    item = {
        "phone_number": mainland_national(sender) or sender.lstrip("+"),
        "content": text,
        "send_time": china_time(now()),
        "dest_code": _dest_code(carrier.config, to),
        "sequence_id": str(random.randrange(10**9, 10**10)),
        "sign_name": to,
    }
    return await carrier.post_once(Callback.json(url, [item]))
