"""Aliyun's error codes as Nudge's error classes (``classify``), and the code tables it reads."""

from __future__ import annotations

from datetime import datetime, timedelta

from activities.providers._http import next_hour, next_minute
from nudge.errors import (
    AccountProviderError,
    DeferredProviderError,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)

ACCOUNT_CODES = frozenset(
    {
        "isv.AMOUNT_NOT_ENOUGH",
        "isv.OUT_OF_SERVICE",
        "isv.DAY_LIMIT_CONTROL",
        "isv.MONTH_LIMIT_CONTROL",
        "isv.ACCOUNT_NOT_EXISTS",
        "isv.ACCOUNT_ABNORMAL",
        "isv.PRODUCT_UN_SUBSCRIPT",
        "isv.PRODUCT_UNSUBSCRIBE",
        "isp.RAM_PERMISSION_DENY",
        "isv.DENY_IP_RANGE",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "IncompleteSignature",
        "MissingSignature",
    }
)
"""The account or its credentials cannot send at all: pause the route and alert."""
RETRYABLE_PREFIXES = ("Throttling", "isp.SYSTEM_ERROR", "ServiceUnavailable", "InternalError")
OPTED_OUT_CODES = frozenset({"isv.CUSTOMER_REFUSED"})
UNREACHABLE_CODES = frozenset({"isv.MOBILE_NUMBER_ILLEGAL"})
"""The number is not a valid mobile number: nothing goes to it again."""


def classify(code: str, message: str, *, http_status: int, now: datetime) -> ProviderError:
    """Map an Aliyun error code to Nudge's error classes."""
    text = f"{code}: {message}" if message else code
    if code == "isv.BUSINESS_LIMIT_CONTROL":
        # Per-number frequency limits; minute and hour windows are natural ones, a day is rolling.
        if "分钟" in message or "minute" in message.lower():
            retry_at = next_minute(now)
        elif "小时" in message or "hour" in message.lower():
            retry_at = next_hour(now)
        else:
            retry_at = now + timedelta(hours=24)
        return DeferredProviderError(text, code=code, provider="aliyun", retry_at=retry_at)
    if code in ACCOUNT_CODES:
        return AccountProviderError(text, code=code, provider="aliyun")
    if code in ("SignatureNonceUsed", "InvalidTimeStamp.Expired"):
        # Every call is signed afresh (new nonce, current time), so the retry is a new request.
        return RetryableProviderError(text, code=code, provider="aliyun")
    if code.startswith(RETRYABLE_PREFIXES) or http_status >= 500:
        # isp.SYSTEM_ERROR and 5xx may have been processed: reconcile before sending again.
        throttled = code.startswith("Throttling")
        return RetryableProviderError(
            text, code=code, provider="aliyun", ambiguous=not throttled, throttled=throttled
        )
    return PermanentProviderError(
        text,
        code=code,
        provider="aliyun",
        opted_out=code in OPTED_OUT_CODES,
        unreachable=code in UNREACHABLE_CODES,
    )
