"""Provider callbacks in each provider's own format: delivery receipts and customers' replies.

- **Aliyun** pushes SmsReport and SmsUp as JSON arrays and does not sign them, so their URLs carry
  a secret token: ``/v1/webhooks/aliyun/{token}/report`` and ``.../up``. Answer
  ``{"code":0,"msg":"接收成功"}``; anything else makes Aliyun push again.
- **Twilio** posts form-encoded status callbacks and inbound messages, signed with
  ``X-Twilio-Signature`` over the public URL. A missing or wrong signature gets 403.
- **Tencent** pushes status reports and replies as JSON arrays, to
  ``/v1/webhooks/tencent/{token}/report`` and ``.../reply``. Answer ``{"result":0,"errmsg":"OK"}``.

Every handler is idempotent (redeliveries are stored, and only ever move a status forward) and
accepts receipts for sends it has not recorded yet.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field

from nudge.logging import get_logger
from nudge.models import MessageStatus
from nudge.settings import Settings
from nudge.signing import twilio_signature_valid
from starter.feedback import Feedback

log = get_logger(__name__)
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
CST = timezone(timedelta(hours=8))
ALIYUN_OK = {"code": 0, "msg": "接收成功"}
TENCENT_OK = {"result": 0, "errmsg": "OK"}
TWILIO_STATUS = {
    "queued": MessageStatus.SUBMITTED,
    "accepted": MessageStatus.SUBMITTED,
    "scheduled": MessageStatus.SUBMITTED,
    "sending": MessageStatus.SENT,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}


async def _feedback(request: Request) -> Feedback:
    feedback: Feedback = request.app.state.services.feedback
    return feedback


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.services.settings
    return settings


FeedbackDep = Annotated[Feedback, Depends(_feedback)]
SettingsDep = Annotated[Settings, Depends(_settings)]
Token = Annotated[str, Path(description="The secret callback token (NUDGE_CALLBACK_TOKEN)")]


def _check_token(token: str, settings: Settings) -> None:
    if not hmac.compare_digest(token.encode(), settings.callback_token.get_secret_value().encode()):
        log.warning("webhook_rejected", reason="bad callback token")
        raise HTTPException(403, detail="unknown callback token")


def mainland_e164(number: str, nationcode: str | None = "86") -> str:
    """Receipts name numbers without ``+``: 11 mainland digits, or country code and number."""
    digits = number.strip().lstrip("+")
    code = (nationcode or "86").lstrip("+")
    if digits.startswith(code) and len(digits) > 11:
        return f"+{digits}"
    return f"+{code}{digits}"


def aliyun_e164(number: str) -> str:
    """Aliyun names mainland numbers by their 11 digits, others as country code + number."""
    digits = number.strip().lstrip("+")
    if len(digits) == 11 and digits.startswith("1"):
        return f"+86{digits}"
    return f"+{digits}"


def _cst(value: str | None) -> datetime | None:
    """Aliyun and Tencent stamp ``yyyy-MM-dd HH:mm:ss`` in Beijing time."""
    if not value or len(value) != 19 or value[10] != " ":
        return None
    try:
        # fromisoformat, not strptime: the same strict format here, at a tenth of the cost.
        return datetime.fromisoformat(value).replace(tzinfo=CST)
    except ValueError:
        return None


# ----- Aliyun ---------------------------------------------------------------------------------


class AliyunReport(BaseModel):
    phone_number: str
    send_time: str | None = None
    report_time: str | None = None
    success: bool
    err_code: str | None = None
    err_msg: str | None = None
    sms_size: str | int | None = None
    biz_id: str
    out_id: str | None = None


class AliyunUp(BaseModel):
    phone_number: str
    content: str
    send_time: str | None = None
    dest_code: str | None = None
    sequence_id: str | int
    sign_name: str | None = None


@router.post("/aliyun/{token}/report", summary="Aliyun SmsReport (delivery receipts)")
async def aliyun_report(
    token: Token, reports: list[AliyunReport], feedback: FeedbackDep, settings: SettingsDep
) -> dict[str, Any]:
    _check_token(token, settings)
    for report in reports:
        await feedback.receipt(
            provider="aliyun",
            message_id=report.out_id or None,
            provider_message_id=report.biz_id,
            to=aliyun_e164(report.phone_number),
            status=MessageStatus.DELIVERED if report.success else MessageStatus.UNDELIVERED,
            error_code=None if report.success else report.err_code,
            at=_cst(report.report_time),
            raw=report.model_dump(mode="json"),
        )
    return ALIYUN_OK


@router.post("/aliyun/{token}/up", summary="Aliyun SmsUp (customers' replies)")
async def aliyun_up(
    token: Token, replies: list[AliyunUp], feedback: FeedbackDep, settings: SettingsDep
) -> dict[str, Any]:
    _check_token(token, settings)
    for reply in replies:
        await feedback.reply(
            provider="aliyun",
            provider_ref=str(reply.sequence_id),
            from_number=aliyun_e164(reply.phone_number),
            to=reply.sign_name or reply.dest_code,
            text=reply.content,
            raw=reply.model_dump(mode="json"),
        )
    return ALIYUN_OK


# ----- Twilio ---------------------------------------------------------------------------------


async def _twilio_form(request: Request, settings: Settings, signature: str | None) -> dict[str, str]:
    """The form, once its ``X-Twilio-Signature`` checks out against the public URL; else 403."""
    body = (await request.body()).decode()
    pairs = parse_qsl(body, keep_blank_values=True)
    form = dict(pairs)
    tokens = {
        r.account_sid: r.auth_token.get_secret_value()
        for r in settings.effective_routes
        if r.provider == "twilio" and r.account_sid and r.auth_token
    }
    token = tokens.get(form.get("AccountSid", ""))
    url = settings.gateway_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if token is None or not twilio_signature_valid(url, pairs, signature, token):
        log.warning("webhook_rejected", provider="twilio", reason="bad signature", path=request.url.path)
        raise HTTPException(403, detail="invalid X-Twilio-Signature")
    return form


TwilioSignature = Annotated[str | None, Header(alias="X-Twilio-Signature")]


@router.post("/twilio/status", summary="Twilio status callback", status_code=204)
async def twilio_status(
    request: Request, feedback: FeedbackDep, settings: SettingsDep, signature: TwilioSignature = None
) -> Response:
    form = await _twilio_form(request, settings, signature)
    sid = form.get("MessageSid") or form.get("SmsSid")
    raw_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    status = TWILIO_STATUS.get(raw_status)
    if not sid or status is None:
        raise HTTPException(422, detail=f"need MessageSid and a known MessageStatus, got {raw_status!r}")
    await feedback.receipt(
        provider="twilio",
        message_id=None,
        provider_message_id=sid,
        status=status,
        error_code=form.get("ErrorCode") or None,
        at=None,
        raw=form,
    )
    return Response(status_code=204)


@router.post("/twilio/inbound", summary="Twilio inbound message (customers' replies)")
async def twilio_inbound(
    request: Request, feedback: FeedbackDep, settings: SettingsDep, signature: TwilioSignature = None
) -> Response:
    form = await _twilio_form(request, settings, signature)
    if not form.get("MessageSid") or not form.get("From"):
        raise HTTPException(422, detail="need MessageSid and From")
    await feedback.reply(
        provider="twilio",
        provider_ref=form["MessageSid"],
        from_number=form["From"],
        to=form.get("To"),
        text=form.get("Body", ""),
        raw=form,
    )
    # Empty TwiML: no automatic answer from Nudge (Twilio answers STOP/HELP itself).
    return Response('<?xml version="1.0" encoding="UTF-8"?><Response/>', media_type="text/xml")


# ----- Tencent --------------------------------------------------------------------------------


class TencentReport(BaseModel):
    user_receive_time: str | None = None
    nationcode: str | None = "86"
    mobile: str
    report_status: str = Field(pattern="^(SUCCESS|FAIL)$")
    errmsg: str | None = None
    description: str | None = None
    sid: str


class TencentReply(BaseModel):
    extend: str | None = None
    mobile: str
    nationcode: str | None = "86"
    sign: str | None = None
    text: str
    time: int


@router.post("/tencent/{token}/report", summary="Tencent status reports (delivery receipts)")
async def tencent_report(
    token: Token, reports: list[TencentReport], feedback: FeedbackDep, settings: SettingsDep
) -> dict[str, Any]:
    _check_token(token, settings)
    for report in reports:
        ok = report.report_status == "SUCCESS"
        await feedback.receipt(
            provider="tencent",
            message_id=None,
            provider_message_id=report.sid,
            to=mainland_e164(report.mobile, report.nationcode),
            status=MessageStatus.DELIVERED if ok else MessageStatus.UNDELIVERED,
            error_code=None if ok else report.errmsg,
            at=_cst(report.user_receive_time),
            raw=report.model_dump(mode="json"),
        )
    return TENCENT_OK


@router.post("/tencent/{token}/reply", summary="Tencent replies (customers' replies)")
async def tencent_reply(
    token: Token, replies: list[TencentReply] | TencentReply, feedback: FeedbackDep, settings: SettingsDep
) -> dict[str, Any]:
    """Tencent's reference shows one object per reply; batched pushes arrive as an array."""
    _check_token(token, settings)
    for reply in replies if isinstance(replies, list) else [replies]:
        number = mainland_e164(reply.mobile, reply.nationcode)
        await feedback.reply(
            provider="tencent",
            provider_ref=f"{number}:{reply.time}:{reply.text}",
            from_number=number,
            to=reply.sign,
            text=reply.text,
            raw=reply.model_dump(mode="json"),
        )
    return TENCENT_OK
