"""The ledger: one entry per message the carrier accepted, the ground truth tests count against."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

CHINA_TIME = timezone(timedelta(hours=8))


class LedgerEntry(BaseModel):
    """One message to one number, whichever API it came in on."""

    id: str
    client_ref: str
    """The sender's reference: native client_ref, Aliyun OutId, Tencent SessionContext; "" for Twilio."""
    to: str
    """The recipient in E.164."""
    sender: str
    body: str
    """The text as the handset shows it, with the 【signature】 for Aliyun and Tencent."""
    segments: int
    received_at: datetime
    status: str = "accepted"
    """``accepted``, then ``delivered`` or ``undelivered`` once the receipt is due."""
    clicked: list[str] = Field(default_factory=list)
    provider: Literal["native", "aliyun", "twilio", "tencent"] = "native"
    account: str = ""
    """AccessKeyId, AccountSid or SecretId."""
    signature: str = ""
    """SignName, or Twilio's From."""
    template_code: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    """Template variables by name (Tencent's positional values mapped to the template's names)."""
    provider_id: str = ""
    """Aliyun BizId (shared by a batch), Twilio SID, Tencent SerialNo."""
    status_callback: str | None = None
    messaging_service_sid: str | None = None
    reported_at: datetime | None = None
    """When the final status was reached."""
    receipts_posted: int = 0
    """Receipts the receiver acknowledged with a 2xx."""


def now() -> datetime:
    return datetime.now(UTC)


def china_time(moment: datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in UTC+8, the way Aliyun and Tencent write times."""
    return moment.astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S")


def new_id() -> str:
    """The ledger's own id for an entry, unique even when a batch shares one provider id."""
    return "SIM" + uuid.uuid4().hex[:20]


class LedgerTally:
    """The ledger's counts kept as entries arrive, for ``/_sim/stats``: a benchmark polls them
    twice a second, and counting a 100,000-entry ledger each time took a fifth of the carrier's
    CPU, more the longer the broadcast."""

    def __init__(self) -> None:
        self.accepted = 0
        self.receipts_posted = 0
        self.first_at: datetime | None = None
        self.last_at: datetime | None = None
        self._numbers: dict[str, int] = {}
        self.repeated = 0
        """Numbers that received more than one message."""

    @property
    def numbers(self) -> int:
        return len(self._numbers)

    def add(self, entry: LedgerEntry) -> None:
        self.accepted += 1
        seen = self._numbers.get(entry.to, 0) + 1
        self._numbers[entry.to] = seen
        if seen == 2:
            self.repeated += 1
        at = entry.received_at
        self.first_at = at if self.first_at is None else min(self.first_at, at)
        self.last_at = at if self.last_at is None else max(self.last_at, at)


class LedgerTallies:
    """A tally of the whole ledger and one per provider API."""

    def __init__(self) -> None:
        self.all = LedgerTally()
        self.by_provider: dict[str, LedgerTally] = {}

    def of(self, provider: str | None) -> LedgerTally:
        return self.all if provider is None else self.by_provider.get(provider, LedgerTally())

    def add(self, entry: LedgerEntry) -> None:
        self.all.add(entry)
        self.by_provider.setdefault(entry.provider, LedgerTally()).add(entry)

    def receipt_posted(self, entry: LedgerEntry) -> None:
        """Count a receipt of ``entry`` the receiver acknowledged (``entry`` counts it itself)."""
        self.all.receipts_posted += 1
        self.by_provider[entry.provider].receipts_posted += 1
