"""All configuration, read once from the environment (``NUDGE_*``) or a ``.env`` file.

This is the only module that reads the environment.
"""

from __future__ import annotations

import json
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from nudge.caps import DEFAULT_CAPS
from nudge.models import FrequencyCap
from nudge.quiet_hours import DEFAULT_WINDOWS, Window
from nudge.routes import RouteConfig, local_routes

DEV_CALLBACK_TOKEN = "nudge-dev-callback-token"
"""The default callback token: fine on loopback, and the gateway warns when it is used elsewhere."""


class Settings(BaseSettings):
    """Nudge's settings. Every field can be set as ``NUDGE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="NUDGE_", env_file=".env", extra="ignore")

    state_dir: Path = Path(".nudge")
    database_url: str = ""
    """SQLAlchemy URL. Empty means SQLite at ``<state_dir>/nudge.db``."""

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233
    task_queue: str = "nudge-journeys"
    transactional_task_queue: str = "nudge-transactional"
    """The priority lane: transactional journeys and their sends run here, on their own slots."""

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    public_url: str = ""
    """Base URL customers and providers reach the gateway at (short links, callbacks)."""

    simulator_host: str = "127.0.0.1"
    simulator_port: int = 8100
    simulator_url: str = ""
    """Base URL of the carrier the ``simulator`` provider sends to."""
    simulator_latency_ms: float = 20.0
    simulator_receipt_delay_ms: float = 300.0
    simulator_failure_rate: float = 0.0

    routes: Annotated[list[RouteConfig], NoDecode] = Field(default_factory=list)
    """Provider routes as a JSON list (see README, "Providers"). Empty means the local simulator's."""
    callback_token: SecretStr = SecretStr(DEV_CALLBACK_TOKEN)
    """Secret path segment of the Aliyun and Tencent receipt URLs (they do not sign their pushes)."""
    quiet_hours: Annotated[dict[str, Window], NoDecode] = Field(default_factory=lambda: dict(DEFAULT_WINDOWS))
    """Marketing send windows by country calling code (``*`` for the rest), as JSON, e.g.
    ``{"86": {"start": "08:00", "end": "20:00", "zone": "Asia/Shanghai"},
    "*": {"start": "09:00", "end": "20:00"}}``. A window without a zone is the recipient's."""
    frequency_caps: Annotated[list[FrequencyCap], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_CAPS)
    )
    """Global frequency caps as JSON, e.g. ``[{"limit": 1, "window": "PT24H"}, {"limit": 3,
    "window": "P7D"}, {"limit": 1, "window": "PT24H", "per": "journey"}]`` (``category``
    defaults to marketing, ``per`` to customer). ``[]`` turns caps off."""
    breaker_threshold: int = 5
    """Retryable failures in a row that open a route's circuit breaker."""
    breaker_cooldown: timedelta = timedelta(seconds=30)
    account_pause: timedelta = timedelta(minutes=5)
    """How long an account-level error (balance, suspension) pauses a route before a probe."""
    default_region: str = "CN"
    """Region used to parse phone numbers written without a country code."""

    journey_overrides: Annotated[dict[str, dict[str, Any]], NoDecode] = Field(default_factory=dict)
    """Per-journey config overrides, e.g. ``{"cart_abandonment": {"first_wait": "PT5S"}}``."""

    log_level: str = "INFO"
    log_json: bool | None = None
    """JSON logs; ``None`` means JSON whenever stderr is not a TTY."""

    send_timeout: timedelta = timedelta(seconds=10)
    """HTTP timeout of a provider call; well under the send activity's 30 s, so a slow provider
    fails as a timeout (counted by its circuit breaker) instead of a cancelled activity."""

    # ----- the complaint-rate breaker (issue 4) -----
    complaint_window: timedelta = timedelta(hours=24)
    """The sliding window a scope's complaint rate is measured over."""
    complaint_attribution: timedelta = timedelta(hours=72)
    """An opt-out counts against the latest marketing message sent to the number within this time."""
    complaint_threshold: float = 0.03
    """Complaints per marketing message sent above which a scope pauses. Healthy campaigns lose
    well under 2% of recipients to opt-outs per send; 3% says the list or the copy went wrong,
    before carriers start filtering the route or the signature."""
    complaint_min_volume: int = 100
    """Messages a scope must have sent in the window before its rate can pause it, so that a few
    STOPs to a small test send do not."""
    complaint_codes: dict[str, list[str]] = Field(default_factory=lambda: {"twilio": ["30004", "30007"]})
    """Receipt error codes that count as complaints, per provider, as JSON. Twilio 30007 is
    carrier filtering (flagged as spam) and 30004 a blocked message. Send-time opt-out and
    blacklist codes (Twilio 21610, Aliyun isv.CUSTOMER_REFUSED, Tencent's blacklist) always count."""
    alert_webhook_url: SecretStr = SecretStr("")
    """Where an automatic pause is posted as JSON (``sends_paused``); empty means the error log
    only. Secret: webhook URLs usually carry a token."""

    @field_validator("quiet_hours", "frequency_caps", "routes", "journey_overrides", mode="before")
    @classmethod
    def _parse_json(cls, value: Any, info: ValidationInfo) -> Any:
        """JSON from the environment; an empty variable means the field's default."""
        if isinstance(value, str):
            if not value.strip():
                return cls.model_fields[info.field_name or ""].get_default(call_default_factory=True)
            return json.loads(value)
        return value

    @property
    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL, with the driver filled in."""
        url = self.database_url or f"sqlite+aiosqlite:///{self.state_dir / 'nudge.db'}"
        for plain, driver in (
            ("postgresql://", "postgresql+psycopg://"),
            ("postgres://", "postgresql+psycopg://"),
            ("sqlite:///", "sqlite+aiosqlite:///"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url

    @property
    def gateway_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def effective_routes(self) -> list[RouteConfig]:
        """The configured routes, or the local simulator's when none are."""
        return self.routes or local_routes(self.carrier_url)

    def callback_url(self, provider: str, kind: str) -> str:
        """Where a provider posts receipts (``report``/``status``) or replies (``up``/``reply``/``inbound``).

        Aliyun and Tencent URLs carry the secret callback token; Twilio's are signed instead.
        """
        if provider == "twilio":
            return f"{self.gateway_url}/v1/webhooks/twilio/{kind}"
        return f"{self.gateway_url}/v1/webhooks/{provider}/{self.callback_token.get_secret_value()}/{kind}"

    @property
    def carrier_url(self) -> str:
        return self.simulator_url.rstrip("/") or f"http://{self.simulator_host}:{self.simulator_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings singleton."""
    return Settings()
