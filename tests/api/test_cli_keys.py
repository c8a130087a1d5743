"""``nudge keys`` on a real database, as a user runs it (its own process), and a key it makes
used against the real gateway."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.api.cli import nudge
from tests.api.conftest import Gateway

ROOT = Path(__file__).resolve().parents[2]


async def keys_cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    env.update(NUDGE_DATABASE_URL=db_url, NUDGE_LOG_LEVEL="WARNING", COLUMNS="200")
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "starter.cli", "keys", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cli_keys_create_list_revoke_on_the_database(gateway: Gateway, db_url: str) -> None:
    """create prints the key alone on stdout (once); the gateway takes it with its scope; list shows
    its prefix, name and scopes, not the key; revoke makes the gateway refuse it."""
    made = await keys_cli(db_url, "create", "--name", "checkout-service", "--scope", "events")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    prefix = key.split("_")[1]
    assert "not shown again" in made.stderr and f"nk_{prefix}" in made.stderr

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gateway.http.base_url, headers=headers, trust_env=False) as http:
        event = {"event_id": f"cli-keys-{prefix}", "customer_id": "ck1", "name": "page_viewed"}
        assert (await http.post("/v1/events", json=event)).status_code == 202
        assert (await http.get("/v1/templates")).status_code == 403

        listed = await keys_cli(db_url, "list")
        assert listed.returncode == 0, listed.stderr
        line = next(row for row in listed.stdout.splitlines() if f"nk_{prefix}" in row)
        assert "checkout-service" in line and "events" in line and "cli:" in line
        assert key.split("_", 2)[2] not in listed.stdout

        revoked = await keys_cli(db_url, "revoke", f"nk_{prefix}")
        assert revoked.returncode == 0 and f"revoked nk_{prefix}" in revoked.stdout
        # The test gateway trusts a check for NUDGE_API_KEY_CACHE (10 s): wait it out, as ops would.
        deadline = asyncio.get_running_loop().time() + 60
        while (status := (await http.post("/v1/events", json=event)).status_code) != 401:
            assert asyncio.get_running_loop().time() < deadline, status
            await asyncio.sleep(0.5)
    assert f"nk_{prefix}" not in (await keys_cli(db_url, "list")).stdout
    assert f"nk_{prefix}" in (await keys_cli(db_url, "list", "--revoked")).stdout


async def test_cli_keys_refuses_bad_input_with_a_message(db_url: str, engine: object) -> None:
    """An unknown scope, a missing one and revoking an unknown prefix exit non-zero with why (on
    a database ``engine`` upgraded)."""
    unknown_scope = await keys_cli(db_url, "create", "--name", "x", "--scope", "root")
    assert unknown_scope.returncode == 2 and "root" in unknown_scope.stderr
    no_scope = await keys_cli(db_url, "create", "--name", "x")
    assert no_scope.returncode == 2 and "--scope" in no_scope.stderr
    missing = await keys_cli(db_url, "revoke", "nk_ffffffff")
    assert missing.returncode == 2 and "no API key with prefix 'ffffffff'" in missing.stderr


async def test_cli_event_with_an_events_key_sends_without_reading_the_profile(gateway: Gateway) -> None:
    """A service's key (events scope) may not read profiles: `nudge event` skips its unknown-customer
    check instead of failing, and the event is accepted."""
    created = await gateway.http.post("/v1/keys", json={"name": "svc", "scopes": ["events"]})
    service = gateway.http.headers.copy()
    service["Authorization"] = f"Bearer {created.json()['key']}"
    original = gateway.http.headers
    gateway.http.headers = service
    try:
        result = await nudge(gateway, "event", "ck2", "page_viewed")
    finally:
        gateway.http.headers = original
    assert result.exit_code == 0, result.output
    assert "has no customer" not in result.output
    assert "no journey is triggered by or waiting for this event" in result.output
