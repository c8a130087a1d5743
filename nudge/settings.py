"""All configuration, read once from the environment (``NUDGE_*``) or a ``.env`` file.

This is the only module that reads the environment.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from nudge.caps import DEFAULT_CAPS
from nudge.errors import ConfigurationError
from nudge.models import FrequencyCap
from nudge.quiet_hours import DEFAULT_WINDOWS, Window
from nudge.routes import ProviderName, RouteConfig, local_routes
from nudge.sinks import StreamBroker, StreamSink, StreamWebhook

DEV_CALLBACK_TOKEN = "nudge-dev-callback-token"
"""The default callback token: fine on loopback, and the gateway warns when it is used elsewhere."""


class Settings(BaseSettings):
    """Nudge's settings. Every field can be set as ``NUDGE_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="NUDGE_", env_file=".env", extra="ignore", use_attribute_docstrings=True
    )

    # Each field's docstring is its line in the README's settings table (``nudge.settings_readme``);
    # ``tests/unit/test_settings.py`` fails when the README's table is not today's.
    state_dir: Path = Path(".nudge")
    """Local state: SQLite files, Temporal's state file, logs."""
    database_url: str = ""
    """SQLAlchemy URL, e.g. ``postgresql://user@host:5432/nudge``. Empty: SQLite at
    ``<state_dir>/nudge.db``."""

    temporal_address: str = "127.0.0.1:7233"
    """Temporal's frontend (host:port)."""
    temporal_namespace: str = "default"
    """Temporal namespace the journeys run in."""
    temporal_tls: bool | None = None
    """Whether to reach Temporal over TLS. Empty: on when a client certificate or an API key is
    set (Temporal Cloud takes either), off otherwise (the dev server)."""
    temporal_tls_cert: Path | None = None
    """A PEM client certificate for mutual TLS (a self-hosted cluster, or Temporal Cloud's mTLS
    namespaces); with ``NUDGE_TEMPORAL_TLS_KEY``."""
    temporal_tls_key: Path | None = None
    """The PEM private key of ``NUDGE_TEMPORAL_TLS_CERT``. Secret: keep the file readable by
    Nudge only."""
    temporal_tls_ca: Path | None = None
    """A PEM CA that signed the server's certificate (a private CA). Empty: the system's roots."""
    temporal_tls_server_name: str = ""
    """The name to check the server's certificate against, when it is not the address's host."""
    temporal_api_key: SecretStr = SecretStr("")
    """A Temporal Cloud API key, sent as a bearer token on every call (TLS on). Secret: never
    logged."""
    temporal_ui_port: int = 8233
    """Port of the Temporal UI that ``nudge up`` starts with the dev server."""
    temporal_ui_url: str = ""
    """Where people open the Temporal UI (the dashboard links each message's journey there). Empty:
    ``http://localhost:<temporal_ui_port>``."""
    task_queue: str = "nudge-journeys"
    """Task queue of the marketing journeys and their activities."""
    transactional_task_queue: str = "nudge-transactional"
    """The priority lane: transactional journeys and their sends run here, on their own slots."""

    gateway_host: str = "127.0.0.1"
    """Interface the gateway listens on."""
    gateway_port: int = 8000
    """Port the gateway listens on."""
    public_url: str = ""
    """Base URL customers and providers reach the gateway at (short links, callbacks). Empty:
    ``http://<gateway_host>:<gateway_port>``."""

    simulator_host: str = "127.0.0.1"
    """Interface the local carrier simulator listens on."""
    simulator_port: int = 8100
    """Port of the local carrier simulator."""
    simulator_url: str = ""
    """Base URL of the carrier the ``simulator`` provider sends to. Empty: the local simulator."""
    simulator_latency_ms: float = 20.0
    """The simulator's answer latency per send."""
    simulator_receipt_delay_ms: float = 300.0
    """How long after a send the simulator pushes its delivery receipt."""
    simulator_failure_rate: float = 0.0
    """Share of sends the simulator fails with a retryable error (0 to 1)."""

    routes: Annotated[list[RouteConfig], NoDecode] = Field(default_factory=list)
    """Provider routes as a JSON list (see [Providers and routing](#providers-and-routing)). Empty: the local
    simulator's."""
    callback_token: SecretStr = SecretStr(DEV_CALLBACK_TOKEN)
    """Secret path segment of the Aliyun and Tencent receipt URLs (they do not sign their pushes); the gateway
    warns when the development default is used off loopback."""
    api_key: SecretStr = SecretStr("")
    """The API key the CLI and the demo send to the gateway. Empty: the local admin key that ``nudge up``
    wrote to ``<state_dir>/admin.key``."""
    api_key_cache: timedelta = timedelta(seconds=10)
    """How long the gateway trusts its check of a key; a key revoked through another gateway or ``nudge keys``
    stops working within this time (at once through this one)."""
    local_admin_key: bool = False
    """On start, the gateway makes sure ``<state_dir>/admin.key`` holds a live admin key (``nudge up`` sets
    this; leave it off in production and make keys with ``nudge keys create``)."""
    codec_keys: SecretStr = SecretStr("")
    """Keys that seal every Temporal payload (AES-256-GCM), newest first: ``id:base64`` pairs separated by
    commas (``nudge codec new-key ID`` makes one). Empty: ``<state_dir>/codec.keys``, which ``nudge up``
    makes."""
    codec_token: SecretStr = SecretStr("")
    """Secret path segment of the codec server's URL for the Temporal UI (``/codec/t/<token>/decode``).
    Empty: only admin API keys may use the codec server."""
    codec_cors_origins: list[str] = Field(default_factory=list)
    """Origins (the Temporal UI's) the codec server answers in the browser, as JSON. Empty:
    ``http://localhost:<temporal_ui_port>`` and ``http://127.0.0.1:<temporal_ui_port>``."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body the API takes; a bigger one gets 413 before it is read in full."""
    max_webhook_body_bytes: int = Field(default=65_536, ge=1024)
    """Largest body a provider webhook takes (receipts and replies are a few hundred bytes)."""
    import_workers: int = Field(default=2, ge=0, le=64)
    """Processes the gateway checks customer imports' rows in (phone numbers, mostly), started at the
    first import; 0: a thread of the gateway (no extra process, about two thirds of the rate on 2 cores)."""
    quiet_hours: Annotated[dict[str, Window], NoDecode] = Field(default_factory=lambda: dict(DEFAULT_WINDOWS))
    """Marketing send windows by country calling code (``*`` for the rest), as JSON, e.g. ``{"44": {"start":
    "09:00", "end": "20:00"}}``; a ``zone`` fixes the zone (else the recipient's), ``start == end`` means
    none."""
    frequency_caps: Annotated[list[FrequencyCap], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_CAPS)
    )
    """Global frequency caps as JSON, e.g. ``[{"limit": 1, "window": "PT24H"}, {"limit": 1, "window": "PT24H",
    "per": "journey"}]``; ``category`` defaults to marketing, ``per`` to customer; ``[]`` turns caps off."""
    shared_route_limits: bool = True
    """Whether each route's rate limit and circuit breaker are held in the database, shared by
    every worker process (three workers together stay within a route's ``tps``; a breaker one
    opens is open for all). Off: each process keeps its own, which is right for one worker only."""
    breaker_threshold: int = 5
    """Retryable failures in a row that open a route's circuit breaker."""
    breaker_cooldown: timedelta = timedelta(seconds=30)
    """How long an open breaker keeps traffic off its route before one probe."""
    account_pause: timedelta = timedelta(minutes=5)
    """How long an account-level error (balance, suspension) pauses a route before a probe."""
    default_region: str = "CN"
    """Region used to parse phone numbers written without a country code."""

    journey_overrides: Annotated[dict[str, dict[str, Any]], NoDecode] = Field(default_factory=dict)
    """Per-journey config as JSON, e.g. ``{"cart_abandonment": {"first_wait": "PT5S"}}``."""

    log_level: str = "INFO"
    """Lowest level logged (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``)."""
    log_json: bool | None = None
    """JSON logs. Unset: JSON whenever stderr is not a TTY."""

    send_timeout: timedelta = timedelta(seconds=10)
    """HTTP timeout of a provider call; well under the send activity's 30 s, so that a slow provider fails as
    a timeout its breaker counts."""
    lookup_graces: dict[ProviderName, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    """Seconds after a lost answer before a provider's listing not showing the message proves it was not
    sent, per provider as JSON, e.g. ``{"tencent": 600}``; unset ones keep their defaults (Aliyun 60,
    Tencent 300, Twilio 30). The send stays pending until then, and says so in ``nudge journeys``."""

    # ----- receipts that never came -----
    receipt_reconcile_after: timedelta = Field(default=timedelta(minutes=10), gt=timedelta(0))
    """A message still without a final status this long after its last status change (the provider taking
    it, or a ``sent`` receipt) is looked up through the provider's status API (QuerySendDetails, Tencent's
    status pull, Twilio's fetch), and again every time this much more passes."""
    receipt_reconcile_every: timedelta = timedelta(minutes=1)
    """How often the worker's Temporal schedule ``nudge-receipt-reconciler`` sweeps; 0 turns it off."""
    receipt_reconcile_for: timedelta = Field(default=timedelta(hours=72), gt=timedelta(0))
    """How long after its last status change the sweep keeps asking; after that a message stays as it is."""

    # ----- the complaint-rate breaker -----
    complaint_window: timedelta = timedelta(hours=24)
    """The sliding window a scope's complaint rate is measured over."""
    complaint_attribution: timedelta = timedelta(hours=72)
    """An opt-out counts against the latest marketing message sent to the number within this time."""
    complaint_threshold: float = 0.03
    """Complaints per marketing message sent above which a scope pauses (healthy campaigns lose well under 2%
    of recipients per send)."""
    complaint_min_volume: int = 100
    """Messages a scope must have sent in the window before its rate can pause it (a few STOPs to a test send
    do not)."""
    complaint_codes: dict[str, list[str]] = Field(default_factory=lambda: {"twilio": ["30004", "30007"]})
    """Receipt error codes that count as complaints, per provider, as JSON (Twilio 30007: carrier filtering;
    30004: blocked). Send-time opt-out codes always count."""
    alert_webhook_url: SecretStr = SecretStr("")
    """Where an automatic pause is posted as JSON (``sends_paused``). Empty: the error log only. Secret: never
    logged."""

    worker_metrics_host: str = "127.0.0.1"
    """Where the worker serves ``/metrics`` (sends, route breakers, the Temporal SDK's runtime metrics)."""
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    """The worker's metrics port; 0 turns it off."""
    worker_cached_workflows: int = Field(default=1000, ge=0)
    """Journeys each lane keeps in memory between their tasks (the SDK's sticky cache, 1,000 by
    default as in the SDK). Fewer keeps a worker smaller with many journeys asleep; one evicted
    is replayed from its history when it wakes (``make bench-sleeping`` measures both)."""
    worker_eager_activities: bool = True
    """Whether the main lane runs an activity its workflow schedules at once, in the same process (Temporal's
    eager activity execution: one round trip less). Set false when several worker processes poll the task
    queues: a broadcast's batches then spread across them instead of all running where its workflow does
    (measured, two processes, 20,000 recipients: 1,247/s with it off, 894/s with it on). The route
    limits stay shared (``NUDGE_SHARED_ROUTE_LIMITS``)."""

    # ----- reports -----
    attribution_window: timedelta = Field(default=timedelta(hours=48), gt=timedelta(0))
    """A journey's goal event counts as a conversion of the last message the customer received from a journey
    with that goal within this time."""
    experiment_min_lift: float = Field(default=0.2, gt=0, le=1)
    """The smallest relative lift an experiment's verdict is sized to detect: it sets the minimum sample per
    variant before any verdict (0.2: a 20 % better rate, at 80 % power)."""
    ip_hash_key: SecretStr = SecretStr("")
    """Key of the hash a click's client address is kept as. Empty: one derived from the codec keys (a secret
    that never appears in a URL; rotating them then changes the hashes, so set this to keep them)."""
    dashboard_secret: SecretStr = SecretStr("")
    """Key that signs the dashboard's session cookies. Empty: one derived from the codec keys (rotating them
    then signs everyone out); without codec keys either, a random one per gateway process."""
    dashboard_session: timedelta = Field(default=timedelta(hours=12), gt=timedelta(0))
    """How long a dashboard login lasts."""

    # ----- the stream out -----
    stream_webhooks: Annotated[list[StreamWebhook], NoDecode] = Field(default_factory=list)
    """Signed webhooks every engagement event is posted to, as a JSON list of ``{"name", "url", "secret",
    "include_pii": false, "kinds": null}`` (see [Streaming events out](#streaming-events-out)); ``kinds``
    limits the events, ``include_pii`` adds the number and the text. Empty: no event is recorded."""
    stream_broker: Annotated[StreamBroker | None, NoDecode] = None
    """A Redis stream every engagement event is appended to, as JSON: ``{"url": "redis://host:6379/0",
    "stream": "nudge:events", "maxlen": 1000000, "include_pii": false, "kinds": null}``. Empty: none."""
    stream_poll_every: timedelta = Field(default=timedelta(seconds=1), gt=timedelta(0))
    """How often the gateway looks for events due to a sink."""
    stream_batch_size: int = Field(default=100, ge=1, le=1000)
    """Most events in one webhook request."""
    stream_retry_min: timedelta = Field(default=timedelta(seconds=1), gt=timedelta(0))
    """The first retry's delay after a failed delivery; each further failure doubles it (with jitter)."""
    stream_retry_max: timedelta = Field(default=timedelta(minutes=10), gt=timedelta(0))
    """The longest delay between two attempts at an event; it is retried at this pace until the sink takes
    it."""
    stream_timeout: timedelta = Field(default=timedelta(seconds=10), gt=timedelta(0))
    """HTTP timeout of one webhook request."""
    stream_retention: timedelta = Field(default=timedelta(days=7), gt=timedelta(0))
    """How long a delivered event's row is kept (undelivered ones are kept until delivered)."""
    stream_max_refusals: int = Field(default=10, ge=1)
    """How many times a sink may refuse one event on its own, for good (an HTTP 4xx other than
    401, 403, 404, 408 or 429, such as 400 or 413), before the event is parked: kept, logged
    (``stream_event_parked``) and no longer offered to that sink. A batch the sink refuses is split
    until the events it refuses stand alone, so that the others still go."""

    @field_validator("codec_token")
    @classmethod
    def _long_token(cls, value: SecretStr) -> SecretStr:
        """The codec token opens every history: refuse a guessable one."""
        if value.get_secret_value() and len(value.get_secret_value()) < 32:
            make = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"
            raise ValueError(f"the codec token must be at least 32 characters ({make})")
        return value

    @field_validator(
        "quiet_hours",
        "frequency_caps",
        "routes",
        "journey_overrides",
        "stream_webhooks",
        "stream_broker",
        mode="before",
    )
    @classmethod
    def _parse_json(cls, value: Any, info: ValidationInfo) -> Any:
        """JSON from the environment; an empty variable means the field's default."""
        if isinstance(value, str):
            if not value.strip():
                return cls.model_fields[info.field_name or ""].get_default(call_default_factory=True)
            return json.loads(value)
        return value

    @field_validator("stream_webhooks")
    @classmethod
    def _unique_sinks(cls, value: list[StreamWebhook]) -> list[StreamWebhook]:
        """A sink's name keys its outbox rows: two sinks with one name would share them."""
        names = [sink.name for sink in value]
        if twice := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"sink names must be unique: {', '.join(twice)} appear more than once")
        return value

    @field_validator("stream_broker")
    @classmethod
    def _broker_named_apart(cls, value: StreamBroker | None, info: ValidationInfo) -> StreamBroker | None:
        """The broker's outbox rows are keyed by its name too."""
        if value is not None and value.name in {hook.name for hook in info.data.get("stream_webhooks", [])}:
            raise ValueError(f"the broker is named {value.name!r} like a webhook; sink names must be unique")
        return value

    @property
    def stream_sinks(self) -> list[StreamSink]:
        """Every configured sink, by the name its outbox rows carry."""
        return [*self.stream_webhooks, *([self.stream_broker] if self.stream_broker else [])]

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
    def ip_key(self) -> bytes:
        """The key of clicks' address hashes: ``ip_hash_key``, else derived from the codec keys."""
        if self.ip_hash_key.get_secret_value():
            return self.ip_hash_key.get_secret_value().encode()
        return hashlib.sha256(b"nudge:ip-hash:" + self.codec_key_text().encode()).digest()

    @property
    def session_key(self) -> bytes | None:
        """The key of dashboard session cookies: ``dashboard_secret``, else derived from the codec keys;
        None when neither is set (the gateway then makes one per process)."""
        if self.dashboard_secret.get_secret_value():
            return self.dashboard_secret.get_secret_value().encode()
        codec = self.codec_key_text()
        return hashlib.sha256(b"nudge:dashboard-session:" + codec.encode()).digest() if codec else None

    @property
    def effective_temporal_ui_url(self) -> str:
        return self.temporal_ui_url.rstrip("/") or f"http://localhost:{self.temporal_ui_port}"

    @property
    def gateway_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def admin_key_path(self) -> Path:
        """Where ``nudge up`` keeps the local admin key."""
        return self.state_dir / "admin.key"

    @property
    def codec_keys_path(self) -> Path:
        """Where ``nudge up`` keeps the local codec key."""
        return self.state_dir / "codec.keys"

    def codec_key_text(self) -> str:
        """The codec keys: ``NUDGE_CODEC_KEYS``, else the state dir's file, else empty."""
        return _set_or_kept(self.codec_keys, self.codec_keys_path)

    @property
    def effective_codec_origins(self) -> list[str]:
        ui = self.temporal_ui_port
        return self.codec_cors_origins or [f"http://localhost:{ui}", f"http://127.0.0.1:{ui}"]

    def client_api_key(self) -> str:
        """The key a client of the gateway sends: ``NUDGE_API_KEY``, else the local admin key's file, else
        none (the gateway then answers 401)."""
        return _set_or_kept(self.api_key, self.admin_key_path)

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


def _set_or_kept(secret: SecretStr, path: Path) -> str:
    """A secret from its setting, else from the file ``nudge up`` keeps it in, else empty."""
    if value := secret.get_secret_value().strip():
        return value
    try:
        return path.read_text().strip()
    except OSError:
        return ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings singleton.

    Raises:
        ConfigurationError: a ``NUDGE_*`` variable does not parse, with each bad one named.
    """
    return load_settings()


def load_settings() -> Settings:
    """The settings as the environment has them now; a bad variable is a ``ConfigurationError``
    naming it, not pydantic's report."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field, *rest = [str(part) for part in error["loc"]] or ["?"]
            where = f"NUDGE_{field.upper()}" + "".join(f"[{part}]" for part in rest)
            problems.append(f"{where}: {error['msg']}")
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"invalid settings: a NUDGE_* JSON value does not parse ({exc})") from None
