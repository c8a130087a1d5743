"""The codec server: the Temporal UI (and ``temporal --codec-endpoint``) decode sealed payloads here.

- ``POST /codec/decode``, ``POST /codec/encode``: for an admin API key;
- ``POST /codec/t/{token}/decode``, ``/encode``: for the Temporal UI, which cannot send our key;
  the token (``NUDGE_CODEC_TOKEN``) is the secret, and without one set these answer 404.

Bodies are Temporal's JSON form of payloads, ``{"payloads": [{"metadata": {...}, "data": "..."}]}``
(bytes as base64), as the UI sends them. CORS admits the UI's origins (``NUDGE_CODEC_CORS_ORIGINS``).
The stored history stays sealed: only a caller that can reach this server reads it.
"""

from __future__ import annotations

import hmac
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payloads

from nudge.codec import CorruptPayload, EncryptionCodec, MissingCodecKey
from starter.api.auth import AUTH_ERRORS, NEEDS_ADMIN, Problem
from starter.api.deps import ServicesDep
from starter.api.errors import invalid

router = APIRouter(prefix="/codec", tags=["codec"])
_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Not Temporal's JSON form of payloads."},
    503: {"model": Problem, "description": "This gateway has no codec."},
}


class PayloadsJson(BaseModel):
    payloads: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)


async def _apply(services: Any, body: PayloadsJson, action: Literal["encode", "decode"]) -> PayloadsJson:
    codec = services.codec
    if not isinstance(codec, EncryptionCodec):
        raise HTTPException(503, detail="this gateway's Temporal client has no payload codec")
    try:
        payloads = ParseDict({"payloads": body.payloads}, Payloads()).payloads
    except ParseError as exc:
        raise HTTPException(400, detail=f"not Temporal payloads in JSON: {exc}") from exc
    try:
        done = await (codec.encode(payloads) if action == "encode" else codec.decode(payloads))
    except (MissingCodecKey, CorruptPayload) as exc:
        raise invalid(str(exc)) from exc
    return PayloadsJson(payloads=MessageToDict(Payloads(payloads=done))["payloads"] if done else [])


def _check_token(services: Any, token: str) -> None:
    expected = services.settings.codec_token.get_secret_value()
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(404, detail="Not Found")


@router.post(
    "/decode", response_model=PayloadsJson, responses={**AUTH_ERRORS, **_REFUSALS}, dependencies=NEEDS_ADMIN
)
async def decode(body: PayloadsJson, services: ServicesDep) -> PayloadsJson:
    """Open sealed payloads (others pass as they are)."""
    return await _apply(services, body, "decode")


@router.post(
    "/encode", response_model=PayloadsJson, responses={**AUTH_ERRORS, **_REFUSALS}, dependencies=NEEDS_ADMIN
)
async def encode(body: PayloadsJson, services: ServicesDep) -> PayloadsJson:
    """Seal payloads with the newest key (what ``temporal workflow start`` needs to send input)."""
    return await _apply(services, body, "encode")


@router.post(
    "/t/{token}/decode", response_model=PayloadsJson, responses={404: {"model": Problem}, **_REFUSALS}
)
async def decode_for_ui(token: str, body: PayloadsJson, services: ServicesDep) -> PayloadsJson:
    """The Temporal UI's decode, behind the codec token in the path."""
    _check_token(services, token)
    return await _apply(services, body, "decode")


@router.post(
    "/t/{token}/encode", response_model=PayloadsJson, responses={404: {"model": Problem}, **_REFUSALS}
)
async def encode_for_ui(token: str, body: PayloadsJson, services: ServicesDep) -> PayloadsJson:
    """The Temporal UI's encode (it seals a signal's input), behind the codec token in the path."""
    _check_token(services, token)
    return await _apply(services, body, "encode")
