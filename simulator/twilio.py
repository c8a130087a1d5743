"""Twilio Programmable Messaging, mounted at ``/twilio/2010-04-01/Accounts/{AccountSid}/``.

``POST Messages.json`` sends, ``GET Messages.json`` lists and ``GET Messages/{Sid}.json`` fetches,
all behind HTTP Basic auth. Status callbacks and inbound messages are form posts signed with
``X-Twilio-Signature``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import uuid
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from nudge.segments import count_segments
from nudge.signing import twilio_signature
from simulator.callbacks import Callback
from simulator.carrier import Carrier, CarrierDep
from simulator.codes import TWILIO_MESSAGES, CarrierError, twilio_http_status
from simulator.config import SimConfig, TwilioAccount
from simulator.ledger import LedgerEntry, new_id, now
from simulator.numbers import E164, iso_region, same_number

API_VERSION = "2010-04-01"
MAX_BODY = 1600
UNDELIVERED_CODE = 30003
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
OPT_OUT_TYPES = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"), "STOP"),
    **dict.fromkeys(("START", "YES", "UNSTOP"), "START"),
    **dict.fromkeys(("HELP", "INFO"), "HELP"),
}

router = APIRouter(prefix=f"/twilio/{API_VERSION}/Accounts/{{account_sid}}", tags=["twilio"])


class TwilioError(CarrierError):
    """Twilio's error body ``{code, message, more_info, status}`` with the same HTTP status."""

    def __init__(self, code: int | str, message: str | None = None, *, status: int | None = None) -> None:
        super().__init__(code)
        self.code = int(code) if str(code).isdigit() else code
        known = TWILIO_MESSAGES.get(self.code, str(code)) if isinstance(self.code, int) else str(code)
        self.message = message or known
        self.status = status or (twilio_http_status(self.code) if isinstance(self.code, int) else 400)

    def response(self) -> JSONResponse:
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


def _authenticated(request: Request, carrier: CarrierDep, account_sid: str) -> tuple[str, TwilioAccount]:
    """The account whose AccountSid:AuthToken the request carries; it must own the URL's sid."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        user, password = "", ""
    account = carrier.config.twilio_accounts.get(user)
    if (
        scheme.lower() != "basic"
        or account is None
        or not hmac.compare_digest(password.encode(), account.auth_token.encode())
        or user != account_sid
    ):
        raise TwilioError(20003)
    return user, account


Auth = Annotated[tuple[str, TwilioAccount], Depends(_authenticated)]


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC))


def _resource(entry: LedgerEntry) -> dict[str, Any]:
    """A message as Twilio's API shows it."""
    undelivered = entry.status == "undelivered"
    base = f"/{API_VERSION}/Accounts/{entry.account}/Messages/{entry.provider_id}"
    return {
        "account_sid": entry.account,
        "api_version": API_VERSION,
        "body": entry.body,
        "date_created": rfc2822(entry.received_at),
        "date_sent": rfc2822(entry.received_at),
        "date_updated": rfc2822(entry.reported_at or entry.received_at),
        "direction": "outbound-api",
        "error_code": UNDELIVERED_CODE if undelivered else None,
        "error_message": "Unreachable destination handset" if undelivered else None,
        "from": entry.sender,
        "messaging_service_sid": entry.messaging_service_sid,
        "num_media": "0",
        "num_segments": str(entry.segments),
        "price": None,
        "price_unit": "USD",
        "sid": entry.provider_id,
        "status": "queued" if entry.status == "accepted" else entry.status,
        "subresource_uris": {"media": f"{base}/Media.json"},
        "to": entry.to,
        "uri": f"{base}.json",
    }


def _sender(form: dict[str, str], account: TwilioAccount) -> tuple[str, str | None]:
    """``From`` (or the service's first number) and the Messaging Service, checked."""
    sender, service = form.get("From", ""), form.get("MessagingServiceSid") or None
    if not sender and not service:
        raise TwilioError(21603, "A 'From' phone number is required.")
    if service is not None and not _SERVICE_SID.match(service):
        raise TwilioError(21701, f"The Messaging Service Sid {service} is invalid.")
    if not sender:
        if not account.numbers:
            raise TwilioError(21603, "A 'From' phone number is required.")
        return account.numbers[0], service
    if any(same_number(sender, n) for n in account.numbers) or _SENDER_ID.match(sender):
        return sender, service
    if E164.match(sender):
        raise TwilioError(
            21606,
            f"The From phone number {sender} is not a valid, SMS-capable inbound phone number "
            "or short code for your account.",
        )
    raise TwilioError(
        21212,
        f"The 'From' number {sender} is not a valid phone number, shortcode, or alphanumeric sender ID.",
    )


def _validate(form: dict[str, str]) -> tuple[str, str]:
    to, body = form.get("To", ""), form.get("Body", "")
    if not to:
        raise TwilioError(21604, "A 'To' phone number is required.")
    if not body:
        raise TwilioError(21602, "Message body is required.")
    if not E164.match(to):
        raise TwilioError(21211, f"The 'To' number {to} is not a valid phone number.")
    if len(body) > MAX_BODY:
        raise TwilioError(21617, "The concatenated message body exceeds the 1600 character limit.")
    return to, body


async def _send(request: Request, carrier: Carrier, account_sid: str, account: TwilioAccount) -> JSONResponse:
    received_at = now()
    await carrier.latency()
    form = dict(parse_qsl((await request.body()).decode(errors="replace"), keep_blank_values=True))
    if not carrier.allow("twilio", account_sid):
        raise TwilioError(20429)
    if carrier.chance(carrier.config.failure_rate):
        raise TwilioError(20500)
    to, body = _validate(form)
    sender, service = _sender(form, account)
    fault = carrier.pick_fault("twilio", account_sid, [to])
    if fault is not None:
        known = TWILIO_MESSAGES.get(int(fault.code)) if fault.code.isdigit() else None
        message = fault.message or (known.format(to=to) if known else None)
        raise TwilioError(fault.code, message, status=fault.http_status)
    entry = LedgerEntry(
        id=new_id(),
        client_ref="",
        to=to,
        sender=sender,
        body=body,
        segments=count_segments(body),
        received_at=received_at,
        provider="twilio",
        account=account_sid,
        signature=sender,
        provider_id="SM" + uuid.uuid4().hex,
        status_callback=form.get("StatusCallback") or None,
        messaging_service_sid=service,
    )
    reverse = carrier.chance(carrier.config.receipt_reorder_rate)
    await carrier.commit(request, [entry], receipts, reverse=reverse)
    return JSONResponse(_resource(entry), status_code=201)


@router.post("/Messages.json")
async def create_message(request: Request, carrier: CarrierDep, auth: Auth) -> JSONResponse:
    """Send one message."""
    return await _send(request, carrier, *auth)


def _date_filters(request: Request) -> list[tuple[str, date]]:
    filters = []
    for name, op in (
        ("DateSent", "="),
        ("DateSent>", ">="),
        ("DateSent>=", ">="),
        ("DateSent<", "<="),
        ("DateSent<=", "<="),
    ):
        if value := request.query_params.get(name):
            try:
                filters.append((op, date.fromisoformat(value[:10])))
            except ValueError:
                raise TwilioError(20001, f"Invalid {name}: {value}") from None
    return filters


def _matches(entry: LedgerEntry, request: Request, dates: list[tuple[str, date]]) -> bool:
    to, sender = request.query_params.get("To"), request.query_params.get("From")
    if (to and entry.to != to) or (sender and entry.sender != sender):
        return False
    sent = entry.received_at.astimezone(UTC).date()
    checks = {"=": sent.__eq__, ">=": sent.__ge__, "<=": sent.__le__}
    return all(checks[op](day) for op, day in dates)


@router.get("/Messages.json")
async def list_messages(request: Request, carrier: CarrierDep, auth: Auth) -> JSONResponse:
    """Messages of the account, newest first, filtered by To, From and DateSent."""
    account_sid, _ = auth
    dates = _date_filters(request)
    try:
        page_size = max(1, min(1000, int(request.query_params.get("PageSize", "50"))))
        page = max(0, int(request.query_params.get("Page", "0")))
    except ValueError:
        raise TwilioError(20001, "Invalid PageSize or Page") from None
    found = [
        e
        for e in reversed(carrier.ledger)
        if e.provider == "twilio" and e.account == account_sid and _matches(e, request, dates)
    ]
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
    more = len(found) > (page + 1) * page_size
    return JSONResponse(
        {
            "messages": [_resource(e) for e in found[page * page_size : (page + 1) * page_size]],
            "page": page,
            "page_size": page_size,
            "first_page_uri": f"{uri}?PageSize={page_size}&Page=0",
            "next_page_uri": f"{uri}?PageSize={page_size}&Page={page + 1}" if more else None,
            "previous_page_uri": f"{uri}?PageSize={page_size}&Page={page - 1}" if page else None,
            "uri": f"{uri}?PageSize={page_size}&Page={page}",
        }
    )


@router.get("/Messages/{message_sid}.json")
async def fetch_message(message_sid: str, carrier: CarrierDep, auth: Auth) -> JSONResponse:
    """One message by its SID."""
    account_sid, _ = auth
    for entry in carrier.ledger:
        if entry.provider == "twilio" and entry.account == account_sid and entry.provider_id == message_sid:
            return JSONResponse(_resource(entry))
    path = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{message_sid}.json"
    raise TwilioError(20404, f"The requested resource {path} was not found")


# ----- callbacks --------------------------------------------------------------------------------


def _signed(url: str, pairs: list[tuple[str, str]], auth_token: str) -> Callback:
    return Callback.form(url, pairs, {"X-Twilio-Signature": twilio_signature(url, pairs, auth_token)})


def receipts(entry: LedgerEntry, config: SimConfig) -> list[Callback]:
    """``sent``, then ``delivered`` or ``undelivered``, to the message's StatusCallback."""
    account = config.twilio_accounts.get(entry.account)
    if not entry.status_callback or account is None:
        return []
    common = [
        ("AccountSid", entry.account),
        ("ApiVersion", API_VERSION),
        ("From", entry.sender),
        ("MessageSid", entry.provider_id),
        ("SmsSid", entry.provider_id),
        ("To", entry.to),
    ]
    if entry.messaging_service_sid:
        common.append(("MessagingServiceSid", entry.messaging_service_sid))
    sent = [*common, ("MessageStatus", "sent"), ("SmsStatus", "sent")]
    final = [
        *common,
        ("MessageStatus", entry.status),
        ("SmsStatus", entry.status),
        ("RawDlrDoneDate", (entry.reported_at or now()).astimezone(UTC).strftime("%y%m%d%H%M")),
    ]
    if entry.status == "undelivered":
        final.append(("ErrorCode", str(UNDELIVERED_CODE)))
    return [_signed(entry.status_callback, pairs, account.auth_token) for pairs in (sent, final)]


async def post_reply(carrier: Carrier, url: str, *, sender: str, to: str, text: str) -> int:
    """An inbound message from ``sender`` to our number ``to``, with ``OptOutType`` for keywords."""
    accounts = carrier.config.twilio_accounts
    owner = next((sid for sid, a in accounts.items() if any(same_number(to, n) for n in a.numbers)), None)
    account_sid = owner or next(iter(accounts), "")
    if not account_sid:
        raise LookupError("no Twilio account is configured")
    sid = "SM" + uuid.uuid4().hex
    pairs = [
        ("AccountSid", account_sid),
        ("ApiVersion", API_VERSION),
        ("Body", text),
        ("From", sender),
        ("FromCountry", iso_region(sender)),
        ("MessageSid", sid),
        ("NumMedia", "0"),
        ("NumSegments", str(count_segments(text))),
        ("SmsMessageSid", sid),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("To", to),
        ("ToCountry", iso_region(to)),
    ]
    if opt_out := OPT_OUT_TYPES.get(text.strip().upper()):
        pairs.append(("OptOutType", opt_out))
    return await carrier.post_once(_signed(url, pairs, accounts[account_sid].auth_token))
