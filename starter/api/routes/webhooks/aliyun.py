"""Aliyun's callbacks: SmsReport (delivery receipts) and SmsUp (replies).

Aliyun pushes them as JSON arrays and does not sign them, so their URLs carry a secret token:
``/v1/webhooks/aliyun/{token}/report`` and ``.../up``. Answer ``{"code":0,"msg":"接收成功"}``;
anything else makes Aliyun push again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from activities.receipts import Receipt
from nudge.models import MessageStatus
from starter.api.auth import Problem
from starter.api.deps import ReceiptsDep, RepliesDep, SettingsDep
from starter.api.routes.webhooks.common import Token, beijing_time, check_token

router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    responses={403: {"model": Problem, "description": "Unknown callback token."}},
)
ALIYUN_OK = {"code": 0, "msg": "接收成功"}


class AliyunAck(BaseModel):
    """What Aliyun's push expects back: ``code`` 0, or it pushes again."""

    code: int
    msg: str


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


def aliyun_e164(number: str) -> str:
    """Aliyun names mainland numbers by their 11 digits, others as country code + number."""
    digits = number.strip().lstrip("+")
    if len(digits) == 11 and digits.startswith("1"):
        return f"+86{digits}"
    return f"+{digits}"


def aliyun_receipt(report: AliyunReport) -> Receipt:
    """An SmsReport item as a receipt: matched by OutId, else by BizId and number (a batch's share both)."""
    return Receipt(
        provider="aliyun",
        message_id=report.out_id or None,
        provider_message_id=report.biz_id,
        to=aliyun_e164(report.phone_number),
        status=MessageStatus.DELIVERED if report.success else MessageStatus.UNDELIVERED,
        error_code=None if report.success else report.err_code,
        at=beijing_time(report.report_time),
        raw=report.model_dump(mode="json"),
    )


@router.post(
    "/aliyun/{token}/report", summary="Aliyun SmsReport (delivery receipts)", response_model=AliyunAck
)
async def aliyun_report(
    token: Token, reports: list[AliyunReport], receipts: ReceiptsDep, settings: SettingsDep
) -> dict[str, Any]:
    check_token(token, settings)
    # One transaction for the whole array (a receipt each used to cost two).
    await receipts.receive_many([aliyun_receipt(report) for report in reports])
    return ALIYUN_OK


@router.post(
    "/aliyun/{token}/up",
    summary="Aliyun SmsUp (customers' replies)",
    response_model=AliyunAck,
)
async def aliyun_up(
    token: Token, replies: list[AliyunUp], inbound: RepliesDep, settings: SettingsDep
) -> dict[str, Any]:
    check_token(token, settings)
    for reply in replies:
        await inbound.receive(
            provider="aliyun",
            provider_ref=str(reply.sequence_id),
            from_number=aliyun_e164(reply.phone_number),
            to=reply.sign_name or reply.dest_code,
            text=reply.content,
            raw=reply.model_dump(mode="json"),
        )
    return ALIYUN_OK
