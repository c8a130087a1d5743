"""Each provider's error codes map to Nudge's four classes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from activities.providers import aliyun, tencent, twilio
from nudge.errors import (
    AccountProviderError,
    DeferredProviderError,
    PermanentProviderError,
    RetryableProviderError,
)

NOW = datetime(2026, 11, 25, 10, 17, 42, tzinfo=UTC)


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("Throttling.User", 400, RetryableProviderError),
        ("Throttling.Api", 400, RetryableProviderError),
        ("isp.SYSTEM_ERROR", 500, RetryableProviderError),
        ("isv.BUSINESS_LIMIT_CONTROL", 200, DeferredProviderError),
        ("isv.AMOUNT_NOT_ENOUGH", 200, AccountProviderError),
        ("isv.OUT_OF_SERVICE", 200, AccountProviderError),
        ("isv.DAY_LIMIT_CONTROL", 200, AccountProviderError),
        ("SignatureDoesNotMatch", 400, AccountProviderError),
        ("isv.MOBILE_NUMBER_ILLEGAL", 200, PermanentProviderError),
        ("isv.TEMPLATE_MISSING_PARAMETERS", 200, PermanentProviderError),
        ("isv.TEMPLATE_PARAMS_ILLEGAL", 200, PermanentProviderError),
        ("isv.BLACK_KEY_CONTROL_LIMIT", 200, PermanentProviderError),
    ],
)
def test_aliyun_classify(code: str, status: int, kind: type) -> None:
    """Aliyun codes: throttling retries, frequency limits defer, balance pauses, bad input is final."""
    assert type(aliyun.classify(code, "", http_status=status, now=NOW)) is kind


def test_aliyun_business_limit_defers_to_the_window_in_the_message() -> None:
    """Minute limits defer to the next minute, hour limits to the next hour, day limits by 24 h."""

    def retry_at(message: str) -> datetime:
        error = aliyun.classify("isv.BUSINESS_LIMIT_CONTROL", message, http_status=200, now=NOW)
        assert isinstance(error, DeferredProviderError)
        return error.retry_at

    assert retry_at("触发分钟级流控Permits:1") == datetime(2026, 11, 25, 10, 18, tzinfo=UTC)
    assert retry_at("触发小时级流控Permits:5") == datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    assert retry_at("触发天级流控Permits:10") == datetime(2026, 11, 26, 10, 17, 42, tzinfo=UTC)


def test_aliyun_throttling_is_safe_to_retry_but_system_error_is_ambiguous() -> None:
    """Throttling was never processed; isp.SYSTEM_ERROR might have been, so it reconciles first."""
    throttled = aliyun.classify("Throttling.User", "", http_status=400, now=NOW)
    system = aliyun.classify("isp.SYSTEM_ERROR", "", http_status=500, now=NOW)
    assert isinstance(throttled, RetryableProviderError) and not throttled.ambiguous
    assert isinstance(system, RetryableProviderError) and system.ambiguous


@pytest.mark.parametrize(
    ("code", "status", "kind", "opted_out"),
    [
        (20429, 429, RetryableProviderError, False),
        (None, 503, RetryableProviderError, False),
        (20003, 401, AccountProviderError, False),
        (30002, 400, AccountProviderError, False),
        (21211, 400, PermanentProviderError, False),
        (21614, 400, PermanentProviderError, False),
        (21610, 400, PermanentProviderError, True),
        (21611, 400, DeferredProviderError, False),
    ],
)
def test_twilio_classify(code: int | None, status: int, kind: type, opted_out: bool) -> None:
    """Twilio codes; 21610 (recipient texted STOP) is permanent and marks the number opted out."""
    error = twilio.classify(code, "", http_status=status, now=NOW)
    assert type(error) is kind
    assert getattr(error, "opted_out", False) is opted_out


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("RequestLimitExceeded", RetryableProviderError),
        ("InternalError.Timeout", RetryableProviderError),
        ("AuthFailure.SignatureFailure", AccountProviderError),
        ("FailedOperation.InsufficientBalanceInSmsPackage", AccountProviderError),
        ("LimitExceeded.AppDailyLimit", AccountProviderError),
        ("LimitExceeded.PhoneNumberThirtySecondLimit", DeferredProviderError),
        ("LimitExceeded.PhoneNumberOneHourLimit", DeferredProviderError),
        ("LimitExceeded.PhoneNumberDailyLimit", DeferredProviderError),
        ("FailedOperation.MarketingSendTimeConstraint", DeferredProviderError),
        ("FailedOperation.PhoneNumberInBlacklist", PermanentProviderError),
        ("InvalidParameterValue.IncorrectPhoneNumber", PermanentProviderError),
    ],
)
def test_tencent_classify(code: str, kind: type) -> None:
    """Tencent codes, request-level and per number."""
    assert type(tencent.classify(code, "", now=NOW)) is kind


def test_tencent_marketing_window_defers_to_eight_beijing_time() -> None:
    """Outside 08:00-22:00 Beijing time, a marketing send waits for the next 08:00 there (00:00 UTC)."""
    error = tencent.classify("FailedOperation.MarketingSendTimeConstraint", "", now=NOW)
    assert isinstance(error, DeferredProviderError)
    assert error.retry_at == datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
