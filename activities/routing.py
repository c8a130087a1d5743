"""Routing: pick the provider route for each message, pace it, and fail over when a route breaks.

- ``Recipient`` is what rules look at: the number's region, prefix and carrier, and the
  customer's tier and language.
- Each ``Route`` has a ``CircuitBreaker`` and a pacer (``activities/breaker.py``; shared by
  every worker through ``activities/route_limits.py``).
- ``Router`` turns settings into routes with live adapters, and lists the candidates for a send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import phonenumbers
from phonenumbers import carrier as pn_carrier
from pydantic import SecretStr

from activities.breaker import CircuitBreaker, Pacer, RateLimiter
from activities.providers.aliyun import AliyunProvider
from activities.providers.base import Provider
from activities.providers.simulator import SimulatorProvider
from activities.providers.tencent import TencentProvider
from activities.providers.twilio import TwilioProvider
from nudge.errors import NudgeError
from nudge.logging import get_logger
from nudge.models import Category
from nudge.phone import parse_number
from nudge.routes import RouteConfig
from nudge.templates import Template

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Recipient:
    """What routing rules match on."""

    to: str
    region: str | None = None
    tier: str | None = None
    language: str | None = None
    number: phonenumbers.PhoneNumber | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, to: str, *, tier: str | None = None, language: str | None = None) -> Recipient:
        number = parse_number(to)
        region = phonenumbers.region_code_for_number(number) if number is not None else None
        return cls(to=to, region=region, tier=tier, language=language, number=number)

    @property
    def carrier(self) -> str | None:
        """The number's carrier (None where phonenumbers knows none), looked up only for a route
        that has carrier rules: it was a quarter of ``Recipient.of``'s cost in a broadcast."""
        if self.number is None:
            return None
        return pn_carrier.name_for_number(self.number, "en") or None


def matches(config: RouteConfig, recipient: Recipient, category: Category) -> bool:
    """True when every rule the route declares accepts this recipient (an empty rule accepts all)."""
    return (
        (not config.countries or recipient.region in config.countries)
        and (not config.prefixes or any(recipient.to.startswith(p) for p in config.prefixes))
        and (not config.carriers or recipient.carrier in config.carriers)
        and (not config.tiers or recipient.tier in config.tiers)
        and (not config.languages or recipient.language in config.languages)
        and (not config.categories or category in config.categories)
    )


@dataclass
class Route:
    config: RouteConfig
    provider: Provider
    breaker: CircuitBreaker
    limiter: Pacer

    @property
    def name(self) -> str:
        return self.config.name

    def supports(self, template: Template) -> bool:
        """Aliyun and Tencent can send only templates approved in their console (with a code)."""
        return (
            self.config.provider not in ("aliyun", "tencent")
            or self.config.provider in template.provider_codes
        )


class NoRoute(NudgeError):
    """No configured route serves this recipient and template."""


class Router:
    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: r.config.priority)
        self.by_name = {route.name: route for route in self.routes}

    def candidates(
        self, recipient: Recipient, template: Template, category: Category, *, forced: str | None = None
    ) -> list[Route]:
        """Routes that may carry this message, best first. Raises ``NoRoute`` when none may."""
        if forced is not None:
            route = self.by_name.get(forced)
            if route is None:
                raise NoRoute(f"unknown route {forced!r}")
            if not route.supports(template):
                raise NoRoute(f"route {forced!r} has no approved code for template {template.code!r}")
            return [route]
        eligible = [r for r in self.routes if matches(r.config, recipient, category) and r.supports(template)]
        if not eligible:
            raise NoRoute(
                f"no route serves {recipient.region or 'this number'} with template {template.code!r}"
            )
        return eligible


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value else ""


def build_provider(
    config: RouteConfig, client: httpx.AsyncClient, *, status_callback: str | None
) -> Provider:
    """The adapter for one route, on the shared HTTP client."""
    match config.provider:
        case "aliyun":
            return AliyunProvider(
                client,
                base_url=config.endpoint,
                access_key_id=config.access_key_id or "",
                access_key_secret=_secret(config.access_key_secret),
                signing=config.aliyun_signing,
                region=config.region,
            )
        case "twilio":
            return TwilioProvider(
                client,
                base_url=config.endpoint,
                account_sid=config.account_sid or "",
                auth_token=_secret(config.auth_token),
                messaging_service_sid=config.messaging_service_sid,
            )
        case "tencent":
            return TencentProvider(
                client,
                base_url=config.endpoint,
                secret_id=config.secret_id or "",
                secret_key=_secret(config.secret_key),
                sdk_app_id=config.sdk_app_id or "",
            )
        case "simulator":
            return SimulatorProvider(client, base_url=config.endpoint, status_callback=status_callback)
    raise ValueError(f"unknown provider {config.provider!r}")


def build_router(
    configs: Sequence[RouteConfig],
    client: httpx.AsyncClient,
    *,
    simulator_callback: str | None = None,
    breaker_threshold: int = 5,
    breaker_cooldown: float = 30.0,
    account_cooldown: float = 300.0,
) -> Router:
    return Router(
        [
            Route(
                config=config,
                provider=build_provider(config, client, status_callback=simulator_callback),
                breaker=CircuitBreaker(
                    config.name,
                    threshold=breaker_threshold,
                    cooldown=breaker_cooldown,
                    account_cooldown=account_cooldown,
                ),
                limiter=RateLimiter(config.tps),
            )
            for config in configs
        ]
    )
