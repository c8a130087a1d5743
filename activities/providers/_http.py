"""Helpers the adapters share: JSON bodies that may not be JSON, and the next natural window."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from nudge.errors import PermanentProviderError, ProviderError, RetryableProviderError

SHANGHAI = ZoneInfo("Asia/Shanghai")
CST = timezone(timedelta(hours=8))


def beijing_time(value: str | None) -> datetime | None:
    """Aliyun and Tencent stamp ``yyyy-MM-dd HH:mm:ss`` in Beijing time; None for anything else."""
    if not value or len(value) != 19 or value[10] != " ":
        return None
    try:
        # fromisoformat, not strptime: the same strict format here, at a tenth of the cost.
        return datetime.fromisoformat(value).replace(tzinfo=CST)
    except ValueError:
        return None


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def next_hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def next_local_time(now: datetime, at: time, zone: ZoneInfo = SHANGHAI) -> datetime:
    """The next moment the wall clock in ``zone`` shows ``at`` (e.g. 08:00 in Shanghai)."""
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), at, tzinfo=zone)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate.astimezone(now.tzinfo)


def unexpected_response(response: httpx.Response, provider: str) -> ProviderError:
    """An answer that is not the provider's JSON (a proxy's page, an empty 5xx).

    429 was never processed; a 5xx may have been, so the retry reconciles first; anything else is
    a request the provider will not take as it is.
    """
    status = response.status_code
    if status == 429:
        return RetryableProviderError("HTTP 429", code="429", provider=provider)
    if status >= 500:
        return RetryableProviderError(f"HTTP {status}", code=str(status), provider=provider, ambiguous=True)
    return PermanentProviderError(
        f"HTTP {status}: {response.text[:200]}", code=str(status), provider=provider
    )
