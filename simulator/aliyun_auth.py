"""Aliyun request authentication: RPC (v2) HMAC-SHA1 and ACS3-HMAC-SHA256, with Aliyun's errors."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse

from nudge.signing import ACS3, aliyun_acs3_authorization, aliyun_rpc_signature, parse_acs3_authorization
from simulator.carrier import Carrier
from simulator.codes import ALIYUN_MESSAGES, CarrierError, aliyun_http_status

VERSION = "2017-05-25"
MAX_SKEW = timedelta(minutes=15)
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

REQUIRED_SIGNED = frozenset(
    {"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"}
)
"""Headers an ACS3 request must sign (Aliyun's v3 rule); it may sign more (the SDK signs all it sends)."""


class AliyunError(CarrierError):
    """An error Aliyun answers with: ``{"Code", "Message", "RequestId"}`` and an HTTP status."""

    def __init__(self, code: str, message: str | None = None, *, status: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or ALIYUN_MESSAGES.get(code, code)
        self.status = aliyun_http_status(code) if status is None else status

    def response(self) -> JSONResponse:
        body = {"Code": self.code, "Message": self.message, "RequestId": request_id()}
        return JSONResponse(body, status_code=self.status)


def missing(name: str) -> AliyunError:
    return AliyunError(f"Missing{name}", f"{name} is mandatory for this action.", status=400)


@dataclass(frozen=True, slots=True)
class Call:
    """An authenticated request: who made it, what it asks for and its parameters."""

    access_key_id: str
    action: str
    params: dict[str, str]


def request_id() -> str:
    return str(uuid.uuid4()).upper()


def form_params(request: Request, body: bytes) -> dict[str, str]:
    """The form-encoded body's parameters (SendBatchSms puts its JSON arrays there)."""
    if not body or "json" in request.headers.get("content-type", ""):
        return {}
    return dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))


def authenticate(request: Request, carrier: Carrier, body: bytes) -> Call:
    """Check the request's signature, timestamp and nonce; raise ``AliyunError`` if any is wrong."""
    query = dict(request.query_params)
    form = form_params(request, body)
    authorization = request.headers.get("authorization", "")
    if authorization.startswith(ACS3):
        return _acs3(request, carrier, authorization, query, form, body)
    params = {**query, **form}
    if "Signature" in params:
        return _rpc(request, carrier, params)
    raise AliyunError("MissingSignature", "Signature is mandatory for this action.", status=400)


def _secret(carrier: Carrier, access_key_id: str) -> str:
    account = carrier.config.aliyun_accounts.get(access_key_id)
    if account is None:
        raise AliyunError("InvalidAccessKeyId.NotFound", "Specified access key is not found.", status=404)
    return account.secret


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def _mismatch() -> AliyunError:
    return AliyunError(
        "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.", status=400
    )


def _check_time(value: str | None, name: str) -> None:
    if not value:
        raise missing(name)
    try:
        moment = datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise AliyunError(
            "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.", status=400
        ) from None
    if abs(datetime.now(UTC) - moment) > MAX_SKEW:
        raise AliyunError(
            "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", status=400
        )


def _check_nonce(carrier: Carrier, access_key_id: str, nonce: str | None) -> None:
    if not nonce:
        raise missing("SignatureNonce")
    if not carrier.use_nonce(access_key_id, nonce):
        raise AliyunError("SignatureNonceUsed", "Specified signature nonce was used already.", status=400)


def _check_version(version: str | None) -> None:
    if version != VERSION:
        raise AliyunError("InvalidVersion", "Specified parameter Version is not valid.", status=400)


def _rpc(request: Request, carrier: Carrier, params: dict[str, str]) -> Call:
    signature = params.pop("Signature")
    access_key_id = params.get("AccessKeyId")
    if not access_key_id:
        raise missing("AccessKeyId")
    secret = _secret(carrier, access_key_id)
    if not _same(aliyun_rpc_signature(params, secret, method=request.method), signature):
        raise _mismatch()
    _check_time(params.get("Timestamp"), "Timestamp")
    _check_nonce(carrier, access_key_id, params.get("SignatureNonce"))
    _check_version(params.get("Version"))
    return Call(access_key_id, params.get("Action", ""), params)


def _acs3(
    request: Request,
    carrier: Carrier,
    authorization: str,
    query: dict[str, str],
    form: dict[str, str],
    body: bytes,
) -> Call:
    try:
        fields = parse_acs3_authorization(authorization)
    except ValueError:
        raise AliyunError(
            "IncompleteSignature", "The request signature does not conform to Aliyun standards.", status=400
        ) from None
    access_key_id = fields["Credential"]
    secret = _secret(carrier, access_key_id)
    payload_sha256 = hashlib.sha256(body).hexdigest()
    if request.headers.get("x-acs-content-sha256") != payload_sha256:
        raise _mismatch()
    names = [name for name in fields["SignedHeaders"].split(";") if name]
    unsigned = sorted(REQUIRED_SIGNED - {name.lower() for name in names})
    if unsigned:
        raise AliyunError(
            "IncompleteSignature",
            f"The request signature does not conform to Aliyun standards: {', '.join(unsigned)} not signed.",
            status=400,
        )
    expected = aliyun_acs3_authorization(
        access_key_id=access_key_id,
        secret=secret,
        method=request.method,
        path="/",
        query=query,
        headers=dict(request.headers),
        payload_sha256=payload_sha256,
        signed_headers=names,
    )
    if not _same(parse_acs3_authorization(expected)["Signature"], fields["Signature"]):
        raise _mismatch()
    _check_time(request.headers.get("x-acs-date"), "x-acs-date")
    _check_nonce(carrier, access_key_id, request.headers.get("x-acs-signature-nonce"))
    _check_version(request.headers.get("x-acs-version"))
    return Call(access_key_id, request.headers.get("x-acs-action", ""), {**query, **form})
