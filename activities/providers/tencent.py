"""Tencent Cloud SMS 2021-01-11: SendSms (up to 200 numbers) and PullSmsSendStatusByPhoneNumber.

Requests are ``POST /`` with a JSON body, signed with TC3-HMAC-SHA256. Errors that concern the
whole request come back as ``Response.Error``; each number's own result is in ``SendStatusSet``.
``SessionContext`` carries Nudge's message id and is echoed in the lookup.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx

from activities.providers._http import json_or_none, next_hour, next_local_time, unexpected_response
from activities.providers.base import BatchOutcome, Delivery, OutboundSms, StatusQuery, Submission
from nudge.errors import (
    AccountProviderError,
    DeferredProviderError,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)
from nudge.models import MessageStatus
from nudge.signing import tencent_tc3_authorization

VERSION = "2021-01-11"
CONTENT_TYPE = "application/json; charset=utf-8"
ACCOUNT_CODES = frozenset(
    {
        "FailedOperation.InsufficientBalanceInSmsPackage",
        "LimitExceeded.AppDailyLimit",
        "LimitExceeded.AppCountryOrRegionDailyLimit",
        "FailedOperation.SmsSdkAppIdVerifyFail",
        "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber",
    }
)
ACCOUNT_PREFIXES = ("AuthFailure", "UnauthorizedOperation")
RETRYABLE_PREFIXES = ("RequestLimitExceeded", "InternalError", "ResourceUnavailable")


def classify(code: str, message: str, *, now: datetime) -> ProviderError:
    """Map a Tencent error code, request-level or per number, to Nudge's error classes."""
    text = f"{code}: {message}" if message else code
    if code == "LimitExceeded.PhoneNumberThirtySecondLimit":
        return DeferredProviderError(
            text, code=code, provider="tencent", retry_at=now + timedelta(seconds=30)
        )
    if code == "LimitExceeded.PhoneNumberOneHourLimit":
        return DeferredProviderError(text, code=code, provider="tencent", retry_at=next_hour(now))
    if code in ("LimitExceeded.PhoneNumberDailyLimit", "LimitExceeded.PhoneNumberSameContentDailyLimit"):
        return DeferredProviderError(text, code=code, provider="tencent", retry_at=now + timedelta(hours=24))
    if code == "LimitExceeded.DeliveryFrequencyLimit":
        return DeferredProviderError(text, code=code, provider="tencent", retry_at=now + timedelta(hours=1))
    if code == "FailedOperation.MarketingSendTimeConstraint":
        # Marketing SMS only between 08:00 and 22:00 Beijing time.
        return DeferredProviderError(
            text, code=code, provider="tencent", retry_at=next_local_time(now, time(8))
        )
    if code == "UnauthorizedOperation.IndividualUserMarketingSmsPermissionDeny":
        # Only marketing is refused to individual accounts: pausing the route would stop receipts
        # and payment confirmations too.
        return PermanentProviderError(text, code=code, provider="tencent")
    if code in ACCOUNT_CODES or code.startswith(ACCOUNT_PREFIXES):
        return AccountProviderError(text, code=code, provider="tencent")
    if code.startswith(RETRYABLE_PREFIXES):
        ambiguous = code.startswith("InternalError")
        return RetryableProviderError(
            text,
            code=code,
            provider="tencent",
            ambiguous=ambiguous,
            throttled=code.startswith("RequestLimitExceeded"),
        )
    return PermanentProviderError(
        text,
        code=code,
        provider="tencent",
        opted_out=code == "FailedOperation.PhoneNumberInBlacklist",
        unreachable=code == "InvalidParameterValue.IncorrectPhoneNumber",
    )


class TencentProvider:
    """Tencent Cloud SMS on an injected ``httpx.AsyncClient``."""

    name = "tencent"
    batch_limit = 200
    lookup_grace = 300.0
    """Seconds after a lost answer before "not found" means "not sent".

    PullSmsSendStatusByPhoneNumber lists a message only once it has a delivery report.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        secret_id: str,
        secret_key: str,
        sdk_app_id: str,
        region: str = "ap-guangzhou",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._secret_id = secret_id
        self._secret_key = secret_key
        self._app_id = sdk_app_id
        self._region = region
        self._clock = clock

    async def send(self, sms: OutboundSms) -> Submission:
        (outcome,) = await self.send_batch([sms])
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome

    def requests(self, batch: Sequence[OutboundSms]) -> int:
        return sum(-(-len(indexes) // self.batch_limit) for indexes in _groups(batch).values())

    async def send_batch(self, batch: Sequence[OutboundSms]) -> list[BatchOutcome]:
        """One SendSms per run of messages that share template, params and signature (≤200 each)."""
        outcomes: dict[int, BatchOutcome] = {
            index: PermanentProviderError(
                "this template has no Tencent template id", code="no_template_code", provider=self.name
            )
            for index, sms in enumerate(batch)
            if not sms.template_code
        }
        for (template_id, signature, params), indexes in _groups(batch).items():
            for start in range(0, len(indexes), self.batch_limit):
                chunk = indexes[start : start + self.batch_limit]
                body = {
                    "PhoneNumberSet": [batch[i].to for i in chunk],
                    "SmsSdkAppId": self._app_id,
                    "TemplateId": template_id,
                    "SignName": signature,
                    "TemplateParamSet": list(params),
                    # One context per request: a lone message's id, else the first one's.
                    "SessionContext": batch[chunk[0]].batch_ref or batch[chunk[0]].message_id,
                }
                try:
                    data = await self._call("SendSms", body)
                except ProviderError as exc:
                    outcomes.update(dict.fromkeys(chunk, exc))
                    continue
                by_number: dict[str, list[dict[str, Any]]] = {}
                for status in data.get("SendStatusSet", []):
                    by_number.setdefault(str(status.get("PhoneNumber")), []).append(status)
                for i in chunk:
                    statuses = by_number.get(batch[i].to) or []
                    outcomes[i] = self._outcome(statuses.pop(0) if statuses else None)
        return [outcomes[i] for i in range(len(batch))]

    async def lookup(self, sms: OutboundSms, *, since: datetime) -> Submission | None:
        async for status in self._pulled(sms.to, since):
            if status.get("SessionContext") in sms.references:
                return Submission(provider=self.name, provider_message_id=str(status["SerialNo"]))
        return None

    async def fetch_status(self, query: StatusQuery) -> Delivery | None:
        """PullSmsSendStatusByPhoneNumber, by SerialNo (else SessionContext): ReportStatus
        SUCCESS is delivered, FAIL undelivered (its Description is the carrier's code)."""
        async for status in self._pulled(query.to, query.sent_at):
            serial, context = status.get("SerialNo"), status.get("SessionContext")
            if serial != query.provider_message_id and (
                query.provider_message_id is not None or context != query.message_id
            ):
                continue
            report = status.get("ReportStatus")
            if report not in ("SUCCESS", "FAIL"):
                return None
            received = status.get("UserReceiveTime")
            return Delivery(
                status=MessageStatus.DELIVERED if report == "SUCCESS" else MessageStatus.UNDELIVERED,
                error_code=None if report == "SUCCESS" else str(status.get("Description") or "FAIL"),
                at=datetime.fromtimestamp(int(received), UTC) if received else None,
                raw={key: status.get(key) for key in ("ReportStatus", "Description", "UserReceiveTime")},
            )
        return None

    async def _pulled(self, number: str, since: datetime) -> AsyncIterator[dict[str, Any]]:
        """Every status of a message to ``number`` since a minute before ``since``, a page at a time."""
        offset = 0
        while True:
            data = await self._call(
                "PullSmsSendStatusByPhoneNumber",
                {
                    "BeginTime": int((since - timedelta(minutes=1)).timestamp()),
                    "Offset": offset,
                    "Limit": 100,
                    "PhoneNumber": number,
                    "SmsSdkAppId": self._app_id,
                },
            )
            statuses = data.get("PullSmsSendStatusSet") or []
            for status in statuses:
                yield status
            if len(statuses) < 100:
                return
            offset += 100

    def _outcome(self, status: dict[str, Any] | None) -> BatchOutcome:
        if status is None:
            return PermanentProviderError(
                "no result for this number", code="missing_status", provider=self.name
            )
        code = str(status.get("Code", ""))
        if code == "Ok":
            fee = status.get("Fee")
            return Submission(
                provider=self.name,
                provider_message_id=str(status["SerialNo"]),
                segments=int(fee) if fee else None,
            )
        return classify(code, str(status.get("Message", "")), now=self._clock())

    async def _call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(self._clock().timestamp())
        request = self._client.build_request(
            "POST",
            f"{self._base_url}/",
            content=payload,
            headers={
                "content-type": CONTENT_TYPE,
                "x-tc-action": action,
                "x-tc-version": VERSION,
                "x-tc-timestamp": str(timestamp),
                "x-tc-region": self._region,
            },
        )
        request.headers["authorization"] = tencent_tc3_authorization(
            secret_id=self._secret_id,
            secret_key=self._secret_key,
            service="sms",
            host=request.headers["host"],
            timestamp=timestamp,
            payload=payload,
            content_type=CONTENT_TYPE,
        )
        response = await self._client.send(request)
        data = json_or_none(response)
        envelope = data.get("Response") if isinstance(data, dict) else None
        if not isinstance(envelope, dict):
            raise unexpected_response(response, self.name)
        error = envelope.get("Error")
        if error:
            raise classify(str(error.get("Code")), str(error.get("Message", "")), now=self._clock())
        return envelope


def _groups(batch: Sequence[OutboundSms]) -> dict[tuple[str, str, tuple[str, ...]], list[int]]:
    """The messages one SendSms can carry together (template, signature and params shared)."""
    groups: dict[tuple[str, str, tuple[str, ...]], list[int]] = {}
    for index, sms in enumerate(batch):
        if sms.template_code:
            key = (sms.template_code, sms.signature, tuple(sms.template_params.values()))
            groups.setdefault(key, []).append(index)
    return groups
