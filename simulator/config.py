"""What the simulated carrier accepts and how it misbehaves: accounts, faults and timing.

Everything here can be changed at runtime with a partial update to ``POST /_sim/config``. The
accounts default to the development credentials in ``nudge.routes``, so the local routes work
against a simulator started with no configuration at all.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from nudge.routes import (
    DEV_ALIYUN_KEYS,
    DEV_SIGNATURES,
    DEV_TENCENT_APP_ID,
    DEV_TENCENT_KEYS,
    DEV_TWILIO_ACCOUNTS,
    DEV_TWILIO_NUMBER,
)

Provider = Literal["aliyun", "twilio", "tencent"]


class AliyunAccount(BaseModel):
    """An AccessKey pair and the signatures (SignName) approved for it."""

    secret: str
    signatures: list[str] = Field(default_factory=lambda: list(DEV_SIGNATURES))


class TwilioAccount(BaseModel):
    """An account's AuthToken and the numbers it owns (valid ``From`` values)."""

    auth_token: str
    numbers: list[str] = Field(default_factory=lambda: [DEV_TWILIO_NUMBER])


class TencentAccount(BaseModel):
    """A SecretId's key, the SmsSdkAppId it may send from and its approved signatures."""

    secret_key: str
    sdk_app_id: str = DEV_TENCENT_APP_ID
    signatures: list[str] = Field(default_factory=lambda: list(DEV_SIGNATURES))


class ExtraTemplate(BaseModel):
    """A template approved on top of ``BUILTIN_TEMPLATES``: its ``${var}`` body and console codes."""

    body: str = Field(min_length=1)
    aliyun: str | None = None
    """The Aliyun TemplateCode, e.g. ``SMS_123``."""
    tencent: str | None = None
    """The Tencent TemplateId, e.g. ``123``."""


class Fault(BaseModel):
    """An error a matching send gets instead of being accepted, in the provider's own format."""

    provider: Literal["aliyun", "twilio", "tencent", "*"]
    code: str = Field(min_length=1)
    """The provider's error code: ``isv.AMOUNT_NOT_ENOUGH``, ``21211``, ``RequestLimitExceeded``..."""
    rate: float = Field(default=1.0, ge=0, le=1)
    account: str | None = None
    """Only sends from this AccessKeyId / AccountSid / SecretId."""
    numbers: list[str] = Field(default_factory=list)
    """Only sends to one of these numbers (compared in E.164)."""
    message: str | None = None
    """Overrides the provider's usual message for ``code``."""
    http_status: int | None = None
    """Overrides the HTTP status the provider usually answers ``code`` with."""


def _aliyun_defaults() -> dict[str, AliyunAccount]:
    return {key: AliyunAccount(secret=secret) for key, secret in DEV_ALIYUN_KEYS.items()}


def _twilio_defaults() -> dict[str, TwilioAccount]:
    return {sid: TwilioAccount(auth_token=token) for sid, token in DEV_TWILIO_ACCOUNTS.items()}


def _tencent_defaults() -> dict[str, TencentAccount]:
    return {sid: TencentAccount(secret_key=key) for sid, key in DEV_TENCENT_KEYS.items()}


class SimConfig(BaseModel):
    """The simulator's whole configuration."""

    # Timing and native-API failures.
    latency_ms: float = 20.0
    """Mean time a send takes to answer."""
    latency_distribution: Literal["exponential", "fixed", "uniform"] = "exponential"
    """``uniform`` draws from [0, 2 * latency_ms]."""
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of sends answered with the provider's internal/unavailable error."""
    rate_limit_tps: float | None = Field(default=None, gt=0)
    """Sends accepted per second per provider account (token bucket, burst max(1, tps))."""
    faults: list[Fault] = Field(default_factory=list)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of sends that are accepted and recorded, then answered only after ``timeout_s``."""
    timeout_s: float = Field(default=30.0, ge=0)

    # Receipts.
    receipt_delay_ms: float = 300.0
    receipt_drop_rate: float = Field(default=0.0, ge=0, le=1)
    receipt_duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    receipt_reorder_rate: float = Field(default=0.0, ge=0, le=1)
    """Twilio: ``delivered`` before ``sent``. Aliyun/Tencent: the receipt before the send's answer."""
    fail_numbers: list[str] = Field(default_factory=list)
    """Numbers whose messages are accepted and then reported undelivered."""
    receipt_batch: int = Field(default=1, ge=1, le=1000)
    """Aliyun and Tencent: up to this many receipts in one pushed JSON array, as their HTTP push
    sends them (``simulator/callbacks.py``); 1 posts each receipt alone."""
    receipt_batch_linger_ms: float = Field(default=200.0, ge=0)
    """How long the first receipt of an array waits for others to join it."""
    receipt_retry_s: float = Field(default=120.0, ge=0)
    """How long a receipt the gateway did not take (down, 5xx) is posted again, with backoff, as the
    providers redeliver: an outage shorter than this loses no receipt."""

    # The simulated customers.
    click_numbers: list[str] = Field(default_factory=list)
    """Numbers whose customer clicks every link they receive."""
    click_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of all other messages whose links the simulated customer clicks."""
    click_rates_by_text: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    """Per wording: the share of messages whose text contains the key that get clicked (the first key
    found wins over ``click_rate``), so that one variant's copy can draw more clicks than another's."""
    click_delay_ms: float = 1500.0
    """How long after its delivery receipt was posted (or, without one, its send) the customer clicks. The
    gateway counts a click within a second of delivery as a link scanner's, not a person's."""

    # Accounts and templates.
    aliyun_accounts: dict[str, AliyunAccount] = Field(default_factory=_aliyun_defaults)
    twilio_accounts: dict[str, TwilioAccount] = Field(default_factory=_twilio_defaults)
    tencent_accounts: dict[str, TencentAccount] = Field(default_factory=_tencent_defaults)
    extra_templates: list[ExtraTemplate] = Field(default_factory=list)

    # Where receipts and replies go (None: nothing is posted). Twilio receipts go to each
    # message's own StatusCallback.
    aliyun_report_url: str | None = None
    aliyun_up_url: str | None = None
    tencent_report_url: str | None = None
    tencent_reply_url: str | None = None
    twilio_inbound_url: str | None = None
