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
