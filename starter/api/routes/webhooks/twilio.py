"""Twilio's callbacks: status callbacks (delivery receipts) and inbound messages (replies).

Twilio posts them form-encoded, signed with ``X-Twilio-Signature`` over the public URL; a
missing or wrong signature gets 403.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, HTTPException, Request, Response

from activities.providers.twilio import TWILIO_STATUS
from nudge.logging import get_logger
from nudge.settings import Settings
from nudge.signing import twilio_signature_valid
from starter.api.auth import Problem
from starter.api.deps import ReceiptsDep, RepliesDep, SettingsDep
from starter.api.errors import invalid

log = get_logger(__name__)
router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    responses={403: {"model": Problem, "description": "Invalid X-Twilio-Signature."}},
)
TwilioSignature = Annotated[str | None, Header(alias="X-Twilio-Signature")]


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


@router.post("/twilio/status", summary="Twilio status callback", status_code=204)
async def twilio_status(
    request: Request, receipts: ReceiptsDep, settings: SettingsDep, signature: TwilioSignature = None
) -> Response:
    form = await _twilio_form(request, settings, signature)
    sid = form.get("MessageSid") or form.get("SmsSid")
    raw_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    status = TWILIO_STATUS.get(raw_status)
    if not sid or status is None:
        raise invalid(f"need MessageSid and a MessageStatus of {sorted(TWILIO_STATUS)}")
    await receipts.receive(
        provider="twilio",
        message_id=None,
        provider_message_id=sid,
        status=status,
        error_code=form.get("ErrorCode") or None,
        at=None,
        raw=form,
    )
    return Response(status_code=204)


@router.post(
    "/twilio/inbound",
    summary="Twilio inbound message (customers' replies)",
    response_class=Response,
    responses={200: {"description": "Empty TwiML: no auto-reply.", "content": {"text/xml": {}}}},
)
async def twilio_inbound(
    request: Request, replies: RepliesDep, settings: SettingsDep, signature: TwilioSignature = None
) -> Response:
    form = await _twilio_form(request, settings, signature)
    if not form.get("MessageSid") or not form.get("From"):
        raise invalid("need MessageSid and From")
    await replies.receive(
        provider="twilio",
        provider_ref=form["MessageSid"],
        from_number=form["From"],
        to=form.get("To"),
        text=form.get("Body", ""),
        raw=form,
    )
    # Empty TwiML: no automatic answer from Nudge (Twilio answers STOP/HELP itself).
    return Response('<?xml version="1.0" encoding="UTF-8"?><Response/>', media_type="text/xml")
