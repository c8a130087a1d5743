"""``nudge routes``: what ops see of the routing configuration."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from nudge.settings import get_settings
from starter.cli import app


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_routes_lists_routes_and_callback_urls() -> None:
    """Configured routes show in priority order; callbacks carry the token; secrets never show."""
    routes = [
        {
            "name": "tw",
            "provider": "twilio",
            "account_sid": "AC1",
            "auth_token": "s3cr3t",
            "signature": "+15550001111",
        },
        {
            "name": "ali",
            "provider": "aliyun",
            "access_key_id": "AK",
            "access_key_secret": "s3cr3t",
            "countries": ["CN"],
            "priority": 1,
        },
    ]
    env = {
        "NUDGE_ROUTES": json.dumps(routes),
        "NUDGE_CALLBACK_TOKEN": "tok123",
        "NUDGE_PUBLIC_URL": "https://nudge.example.com",
    }
    result = CliRunner().invoke(app, ["routes"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.index("ali") < result.output.index("tw ")
    assert "countries=CN" in result.output
    assert "https://nudge.example.com/v1/webhooks/aliyun/tok123/report" in result.output
    assert "https://nudge.example.com/v1/webhooks/twilio/status" in result.output
    assert "s3cr3t" not in result.output


def test_routes_with_bad_config_exits_2_with_reason() -> None:
    """A route missing its credentials is named, and the exit code is 2."""
    result = CliRunner().invoke(
        app, ["routes"], env={"NUDGE_ROUTES": '[{"name": "x", "provider": "tencent"}]'}
    )
    assert result.exit_code == 2
    assert "route 'x' (tencent) needs secret_id, secret_key, sdk_app_id" in result.output
