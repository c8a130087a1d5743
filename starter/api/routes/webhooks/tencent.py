"""Tencent's callbacks: status reports (delivery receipts) and replies.

Tencent pushes them as JSON arrays (a reply also as one object), unsigned, to
``/v1/webhooks/tencent/{token}/report`` and ``.../reply``. Answer ``{"result":0,"errmsg":"OK"}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

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
TENCENT_OK = {"result": 0, "errmsg": "OK"}


class TencentAck(BaseModel):
    """What Tencent's push expects back: ``result`` 0, or it pushes again."""

    result: int
    errmsg: str


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


def mainland_e164(number: str, nationcode: str | None = "86") -> str:
    """Receipts name numbers without ``+``: 11 mainland digits, or country code and number."""
    digits = number.strip().lstrip("+")
    code = (nationcode or "86").lstrip("+")
    if digits.startswith(code) and len(digits) > 11:
        return f"+{digits}"
    return f"+{code}{digits}"


def tencent_receipt(report: TencentReport) -> Receipt:
    """A status report as a receipt: matched by SerialNo and number (Tencent echoes no id of ours)."""
    delivered = report.report_status == "SUCCESS"
    return Receipt(
        provider="tencent",
        message_id=None,
        provider_message_id=report.sid,
        to=mainland_e164(report.mobile, report.nationcode),
        status=MessageStatus.DELIVERED if delivered else MessageStatus.UNDELIVERED,
        error_code=None if delivered else report.errmsg,
        at=beijing_time(report.user_receive_time),
        raw=report.model_dump(mode="json"),
    )


@router.post(
    "/tencent/{token}/report", summary="Tencent status reports (delivery receipts)", response_model=TencentAck
)
async def tencent_report(
    token: Token, reports: list[TencentReport], receipts: ReceiptsDep, settings: SettingsDep
) -> dict[str, Any]:
    check_token(token, settings)
    # One transaction for the whole array (a receipt each used to cost two).
    await receipts.receive_many([tencent_receipt(report) for report in reports])
    return TENCENT_OK


@router.post(
    "/tencent/{token}/reply", summary="Tencent replies (customers' replies)", response_model=TencentAck
)
async def tencent_reply(
    token: Token, replies: list[TencentReply] | TencentReply, inbound: RepliesDep, settings: SettingsDep
) -> dict[str, Any]:
    """Tencent's reference shows one object per reply; batched pushes arrive as an array."""
    check_token(token, settings)
    for reply in replies if isinstance(replies, list) else [replies]:
        number = mainland_e164(reply.mobile, reply.nationcode)
        await inbound.receive(
            provider="tencent",
            provider_ref=f"{number}:{reply.time}:{reply.text}",
            from_number=number,
            to=reply.sign,
            text=reply.text,
            raw=reply.model_dump(mode="json"),
        )
    return TENCENT_OK
