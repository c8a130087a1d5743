"""Route configuration: which provider account and signature a message goes out on.

A route is provider + account + signature (or sender), with a rate limit and rules that say which
customers it serves. Routes are data: ``NUDGE_ROUTES`` holds a JSON list of ``RouteConfig``. When
it is empty, Nudge uses ``local_routes``: the three providers on the local carrier simulator, with
the development credentials below, which the simulator also accepts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from nudge.models import Category

ProviderName = Literal["aliyun", "twilio", "tencent", "simulator"]

PUBLIC_ENDPOINTS: dict[str, str] = {
    "aliyun": "https://dysmsapi.aliyuncs.com",
    "twilio": "https://api.twilio.com",
    "tencent": "https://sms.tencentcloudapi.com",
}

# Development credentials: the carrier simulator's accounts, and the local routes that use them.
DEV_ALIYUN_KEYS = {
    "LTAI5tNudgeDevPrimary": "nudge-dev-aliyun-secret",
    "LTAI5tNudgeDevBackup": "nudge-dev-backup-secret",
}
DEV_TWILIO_ACCOUNTS = {"AC00000000000000000000000000000dev": "nudge-dev-twilio-token"}
DEV_TWILIO_NUMBER = "+15005550006"
DEV_TENCENT_KEYS = {"AKIDNudgeDevTencent": "nudge-dev-tencent-secret"}
DEV_TENCENT_APP_ID = "1400000001"
DEV_SIGNATURES = ["Nudge", "努济"]


class RouteConfig(BaseModel):
    """One route. Credentials are secrets: they never appear in logs or reprs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    provider: ProviderName
    base_url: str | None = None
    """Defaults to the provider's public endpoint."""

    # Aliyun
    access_key_id: str | None = None
    access_key_secret: SecretStr | None = None
    aliyun_signing: Literal["rpc", "acs3"] = "rpc"
    region: str = "cn-hangzhou"
    # Twilio
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    messaging_service_sid: str | None = None
    # Tencent
    secret_id: str | None = None
    secret_key: SecretStr | None = None
    sdk_app_id: str | None = None

    signature: str = "Nudge"
    """Aliyun/Tencent SignName; for Twilio the ``From`` number or sender id."""
    signatures: dict[str, str] = Field(default_factory=dict)
    """Per-language signature variants, e.g. ``{"zh": "努济"}``; ``signature`` is the fallback."""

    tps: float = Field(default=50.0, gt=0)
    """Requests per second this route accepts (a batch call is one, as Aliyun and Tencent count
    their QPS; Twilio's messages are one each); Nudge never sends faster."""
    cost_per_segment: float = Field(default=0.0, ge=0)
    currency: str = "CNY"

    # Rules: an empty list matches everything.
    countries: list[str] = Field(default_factory=list)
    """ISO regions of the recipient's number, e.g. ``["CN"]``."""
    prefixes: list[str] = Field(default_factory=list)
    """E.164 prefixes, e.g. ``["+86138"]``."""
    carriers: list[str] = Field(default_factory=list)
    """Carrier names as ``phonenumbers`` reports them, e.g. ``["China Mobile"]``."""
    tiers: list[str] = Field(default_factory=list)
    """Customer tiers (profile attribute ``tier``)."""
    languages: list[str] = Field(default_factory=list)
    """Customer languages (profile attribute ``language``)."""
    categories: list[Category] = Field(default_factory=list)
    priority: int = 100
    """Lower goes first among the routes that match; the rest are failover."""

    @model_validator(mode="after")
    def _credentials(self) -> RouteConfig:
        needed = {
            "aliyun": ("access_key_id", "access_key_secret"),
            "twilio": ("account_sid", "auth_token"),
            "tencent": ("secret_id", "secret_key", "sdk_app_id"),
            "simulator": (),
        }[self.provider]
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            raise ValueError(f"route {self.name!r} ({self.provider}) needs {', '.join(missing)}")
        sender_ok = self.signature.startswith("+") or self.signature.isalnum() or self.messaging_service_sid
        if self.provider == "twilio" and not sender_ok:
            raise ValueError(
                f"route {self.name!r}: Twilio needs a From number, an alphanumeric sender id "
                "or a messaging_service_sid"
            )
        return self

    @property
    def endpoint(self) -> str:
        return (self.base_url or PUBLIC_ENDPOINTS.get(self.provider, "")).rstrip("/")

    def signature_for(self, language: str | None) -> str:
        return self.signatures.get(language or "", self.signature)


def local_routes(carrier_url: str) -> list[RouteConfig]:
    """The default routes: every provider on the local carrier simulator.

    Mainland numbers go to Aliyun first, with Tencent as the failover; the rest go to Twilio.
    """
    base = carrier_url.rstrip("/")
    (ali_id, ali_secret), (backup_id, backup_secret) = DEV_ALIYUN_KEYS.items()
    ((sid, token),) = DEV_TWILIO_ACCOUNTS.items()
    ((tc_id, tc_key),) = DEV_TENCENT_KEYS.items()
    return [
        RouteConfig(
            name="aliyun-cn",
            provider="aliyun",
            base_url=f"{base}/aliyun",
            access_key_id=ali_id,
            access_key_secret=SecretStr(ali_secret),
            signature="Nudge",
            signatures={"zh": "努济"},
            countries=["CN"],
            priority=10,
            tps=500,
            cost_per_segment=0.045,
        ),
        RouteConfig(
            name="tencent-cn",
            provider="tencent",
            base_url=f"{base}/tencent",
            secret_id=tc_id,
            secret_key=SecretStr(tc_key),
            sdk_app_id=DEV_TENCENT_APP_ID,
            signature="Nudge",
            countries=["CN"],
            priority=20,
            tps=500,
            cost_per_segment=0.05,
        ),
        RouteConfig(
            name="aliyun-cn-backup",
            provider="aliyun",
            base_url=f"{base}/aliyun",
            access_key_id=backup_id,
            access_key_secret=SecretStr(backup_secret),
            aliyun_signing="acs3",
            signature="Nudge",
            countries=["CN"],
            priority=30,
            tps=200,
            cost_per_segment=0.045,
        ),
        RouteConfig(
            name="twilio-intl",
            provider="twilio",
            base_url=f"{base}/twilio",
            account_sid=sid,
            auth_token=SecretStr(token),
            signature=DEV_TWILIO_NUMBER,
            priority=50,
            tps=500,
            cost_per_segment=0.0079,
            currency="USD",
        ),
    ]
