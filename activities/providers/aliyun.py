"""Aliyun (Alibaba Cloud) Dysms 2017-05-25: SendSms, SendBatchSms and QuerySendDetails.

Requests are ``POST /`` signed with the RPC HMAC-SHA1 scheme, or ACS3-HMAC-SHA256 when the route
asks for it. Business rejections come back as HTTP 200 with ``Code != "OK"``; throttling and
signature errors as HTTP 4xx. SendSms is not idempotent: after a timeout, Nudge finds the message
with QuerySendDetails (by number, date and ``OutId``) before it sends again.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from activities.providers._http import (
    SHANGHAI,
    beijing_time,
    json_or_none,
    unexpected_response,
)
from activities.providers.aliyun_errors import classify
from activities.providers.base import BatchOutcome, Delivery, OutboundSms, StatusQuery, Submission
from nudge.errors import (
    PermanentProviderError,
    ProviderError,
)
from nudge.models import MessageStatus
from nudge.signing import aliyun_acs3_authorization, aliyun_rpc_signature

VERSION = "2017-05-25"
SEND_STATUS = {3: MessageStatus.DELIVERED, 2: MessageStatus.UNDELIVERED}
"""QuerySendDetails' SendStatus, when final (1 is still waiting for the carrier's report)."""


def national_number(e164: str) -> str:
    """Mainland numbers go out as 11 digits; others as country code + number without ``+``."""
    return e164[3:] if e164.startswith("+86") else e164.lstrip("+")


class AliyunProvider:
    """Dysms on an injected ``httpx.AsyncClient``; ``base_url`` defaults to the public endpoint."""

    name = "aliyun"
    batch_limit = 100
    lookup_grace = 60.0
    """Seconds after a lost answer before "not found" means "not sent".

    QuerySendDetails lags the send by seconds.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        access_key_id: str,
        access_key_secret: str,
        signing: str = "rpc",
        region: str = "cn-hangzhou",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._key_id = access_key_id
        self._secret = access_key_secret
        self._signing = signing
        self._region = region
        self._clock = clock

    async def send(self, sms: OutboundSms) -> Submission:
        data = await self._call(
            "SendSms",
            query={
                "PhoneNumbers": national_number(sms.to),
                "SignName": sms.signature,
                "TemplateCode": self._template_code(sms),
                "TemplateParam": _json(sms.template_params),
                "OutId": sms.message_id,
            },
        )
        return Submission(provider=self.name, provider_message_id=str(data["BizId"]))

    async def send_batch(self, batch: Sequence[OutboundSms]) -> list[BatchOutcome]:
        """SendBatchSms: up to 100 numbers per call, one template, a signature and params each.

        One call succeeds or fails as a whole, and answers with one BizId for all its numbers.
        """
        outcomes: list[BatchOutcome] = []
        for start in range(0, len(batch), self.batch_limit):
            chunk = list(batch[start : start + self.batch_limit])
            codes = {self._template_code(sms) for sms in chunk}
            if len(codes) != 1:
                raise ValueError("an Aliyun batch must use one template")
            try:
                data = await self._call(
                    "SendBatchSms",
                    query={"TemplateCode": codes.pop(), "OutId": chunk[0].batch_ref or chunk[0].message_id},
                    form={
                        "PhoneNumberJson": _json([national_number(sms.to) for sms in chunk]),
                        "SignNameJson": _json([sms.signature for sms in chunk]),
                        "TemplateParamJson": _json([sms.template_params for sms in chunk]),
                    },
                )
            except ProviderError as exc:
                outcomes.extend(exc for _ in chunk)
                continue
            outcomes.extend(
                Submission(provider=self.name, provider_message_id=str(data["BizId"])) for _ in chunk
            )
        return outcomes

    def requests(self, batch: Sequence[OutboundSms]) -> int:
        return -(-len(batch) // self.batch_limit)

    async def lookup(self, sms: OutboundSms, *, since: datetime) -> Submission | None:
        """QuerySendDetails for the number on each day since ``since`` (Shanghai dates), by OutId."""
        async for detail in self._details(sms.to, since):
            if detail.get("OutId") in sms.references:
                return Submission(provider=self.name, provider_message_id=None)
        return None

    async def fetch_status(self, query: StatusQuery) -> Delivery | None:
        """QuerySendDetails by BizId (a batch's numbers share one) or OutId: SendStatus 3 is
        delivered, 2 failed (with its ErrCode), 1 still waiting for the carrier's report."""
        async for detail in self._details(query.to, query.sent_at, biz_id=query.provider_message_id):
            if query.provider_message_id is None and detail.get("OutId") != query.message_id:
                continue
            status = SEND_STATUS.get(int(detail.get("SendStatus") or 1))
            if status is None:
                return None
            fields = ("SendStatus", "ErrCode", "SendDate", "ReceiveDate", "TemplateCode")
            return Delivery(
                status=status,
                error_code=None
                if status is MessageStatus.DELIVERED
                else str(detail.get("ErrCode") or "FAILED"),
                at=beijing_time(detail.get("ReceiveDate")),
                raw={key: detail[key] for key in fields if key in detail},
            )
        return None

    async def _details(
        self, number: str, since: datetime, *, biz_id: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every SmsSendDetailDTO for ``number`` sent on a Shanghai day from ``since``'s to today's."""
        day = since.astimezone(SHANGHAI).date()
        last = self._clock().astimezone(SHANGHAI).date()
        while day <= last:
            page = 1
            while True:
                query = {
                    "PhoneNumber": national_number(number),
                    "SendDate": day.strftime("%Y%m%d"),
                    "PageSize": "50",
                    "CurrentPage": str(page),
                }
                if biz_id:
                    query["BizId"] = biz_id
                data = await self._call("QuerySendDetails", query=query)
                details = (data.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
                for detail in details:
                    yield detail
                if page * 50 >= int(data.get("TotalCount", 0)) or not details:
                    break
                page += 1
            day += timedelta(days=1)

    def _template_code(self, sms: OutboundSms) -> str:
        if not sms.template_code:
            raise PermanentProviderError(
                "this template has no Aliyun template code", code="no_template_code", provider=self.name
            )
        return sms.template_code

    async def _call(
        self, action: str, *, query: dict[str, str], form: dict[str, str] | None = None
    ) -> dict[str, Any]:
        now = self._clock()
        body = urlencode(form).encode() if form else b""
        if self._signing == "acs3":
            request = self._acs3_request(action, query, body, now)
        else:
            request = self._rpc_request(action, query, form or {}, body, now)
        response = await self._client.send(request)
        data = json_or_none(response)
        if not isinstance(data, dict):
            raise unexpected_response(response, self.name)
        code = str(data.get("Code", ""))
        if response.status_code == 200 and code == "OK":
            return data
        raise classify(
            code or str(response.status_code),
            str(data.get("Message", "")),
            http_status=response.status_code,
            now=now,
        )

    def _rpc_request(
        self, action: str, query: dict[str, str], form: dict[str, str], body: bytes, now: datetime
    ) -> httpx.Request:
        params = {
            "AccessKeyId": self._key_id,
            "Action": action,
            "Format": "JSON",
            "RegionId": self._region,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": VERSION,
            **query,
        }
        # The RPC signature covers the query and the form body together.
        params["Signature"] = aliyun_rpc_signature({**params, **form}, self._secret, method="POST")
        headers = {"accept": "application/json"}
        if body:
            headers["content-type"] = "application/x-www-form-urlencoded"
        return self._client.build_request(
            "POST", f"{self._base_url}/", params=params, content=body, headers=headers
        )

    def _acs3_request(self, action: str, query: dict[str, str], body: bytes, now: datetime) -> httpx.Request:
        payload_hash = hashlib.sha256(body).hexdigest()
        headers = {
            "accept": "application/json",
            "x-acs-action": action,
            "x-acs-version": VERSION,
            "x-acs-date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x-acs-signature-nonce": uuid.uuid4().hex,
            "x-acs-content-sha256": payload_hash,
        }
        if body:
            headers["content-type"] = "application/x-www-form-urlencoded"
        request = self._client.build_request(
            "POST", f"{self._base_url}/", params=query, content=body, headers=headers
        )
        signed = {
            k: v
            for k, v in request.headers.items()
            if k in ("host", "content-type") or k.startswith("x-acs-")
        }
        request.headers["authorization"] = aliyun_acs3_authorization(
            access_key_id=self._key_id,
            secret=self._secret,
            method="POST",
            path="/",
            query=query,
            headers=signed,
            payload_sha256=payload_hash,
        )
        return request


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
