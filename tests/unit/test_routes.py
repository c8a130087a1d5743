"""Route configuration: the default local routes, field by field, and signature variants."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from nudge.routes import RouteConfig, local_routes


def plain(config: RouteConfig) -> dict[str, Any]:
    """Every field of a route, with its secrets revealed (for comparing with a table)."""
    return {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in config.model_dump().items()
    }


NO_RULES: dict[str, Any] = {"prefixes": [], "carriers": [], "tiers": [], "languages": [], "categories": []}
UNUSED_CREDENTIALS: dict[str, Any] = {
    "access_key_id": None,
    "access_key_secret": None,
    "account_sid": None,
    "auth_token": None,
    "messaging_service_sid": None,
    "secret_id": None,
    "secret_key": None,
    "sdk_app_id": None,
}


def expected_local_routes(base: str) -> list[dict[str, Any]]:
    """The default routes as the module docstring and the simulator's dev accounts describe them:
    Aliyun, then Tencent, then the Aliyun backup account (ACS3-signed) for the mainland; Twilio
    for the rest. Written out by hand, as the table a reviewer checks."""
    common = UNUSED_CREDENTIALS | NO_RULES | {"aliyun_signing": "rpc", "region": "cn-hangzhou"}
    return [
        common
        | {
            "name": "aliyun-cn",
            "provider": "aliyun",
            "base_url": f"{base}/aliyun",
            "access_key_id": "LTAI5tNudgeDevPrimary",
            "access_key_secret": "nudge-dev-aliyun-secret",
            "signature": "Nudge",
            "signatures": {"zh": "努济"},
            "tps": 500.0,
            "cost_per_segment": 0.045,
            "currency": "CNY",
            "countries": ["CN"],
            "priority": 10,
        },
        common
        | {
            "name": "tencent-cn",
            "provider": "tencent",
            "base_url": f"{base}/tencent",
            "secret_id": "AKIDNudgeDevTencent",
            "secret_key": "nudge-dev-tencent-secret",
            "sdk_app_id": "1400000001",
            "signature": "Nudge",
            "signatures": {},
            "tps": 500.0,
            "cost_per_segment": 0.05,
            "currency": "CNY",
            "countries": ["CN"],
            "priority": 20,
        },
        common
        | {
            "name": "aliyun-cn-backup",
            "provider": "aliyun",
            "base_url": f"{base}/aliyun",
            "access_key_id": "LTAI5tNudgeDevBackup",
            "access_key_secret": "nudge-dev-backup-secret",
            "aliyun_signing": "acs3",
            "signature": "Nudge",
            "signatures": {},
            "tps": 200.0,
            "cost_per_segment": 0.045,
            "currency": "CNY",
            "countries": ["CN"],
            "priority": 30,
        },
        common
        | {
            "name": "twilio-intl",
            "provider": "twilio",
            "base_url": f"{base}/twilio",
            "account_sid": "AC00000000000000000000000000000dev",
            "auth_token": "nudge-dev-twilio-token",
            "signature": "+15005550006",
            "signatures": {},
            "tps": 500.0,
            "cost_per_segment": 0.0079,
            "currency": "USD",
            "countries": [],
            "priority": 50,
        },
    ]


@pytest.mark.parametrize(
    ("carrier_url", "base"),
    [
        ("http://127.0.0.1:8025", "http://127.0.0.1:8025"),
        ("http://127.0.0.1:8025/", "http://127.0.0.1:8025"),
        ("http://sim.example/X/", "http://sim.example/X"),
    ],
    ids=["bare", "trailing-slash", "path-ending-in-x"],
)
def test_local_routes_are_the_documented_table(carrier_url: str, base: str) -> None:
    """Every field of every default route, each provider under its own path on the simulator
    (one trailing slash dropped, nothing else)."""
    assert [plain(config) for config in local_routes(carrier_url)] == expected_local_routes(base)


@pytest.mark.parametrize(
    ("language", "signature"),
    [("zh", "努济"), ("en", "Nudge"), (None, "Nudge"), ("", "Nudge")],
    ids=["variant", "no-variant", "no-language", "empty-language"],
)
def test_signature_for_picks_the_language_variant(language: str | None, signature: str) -> None:
    """A language with a variant gets it; any other language, or none, gets the route's own."""
    config = RouteConfig(name="r", provider="simulator", signature="Nudge", signatures={"zh": "努济"})
    assert config.signature_for(language) == signature
