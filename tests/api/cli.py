"""Running the ``nudge`` CLI against the gateway fixture, in-process."""

from __future__ import annotations

import asyncio

from click.testing import Result
from typer.testing import CliRunner

from starter.cli import app
from tests.api.conftest import Gateway


async def nudge(gateway: Gateway, *args: str) -> Result:
    """Run the CLI in a thread: its blocking HTTP calls must not stall the gateway's event loop."""
    argv = [*args, "--gateway", str(gateway.http.base_url)]
    key = gateway.http.headers["Authorization"].removeprefix("Bearer ")
    env = {"COLUMNS": "200", "NUDGE_API_KEY": key}
    return await asyncio.to_thread(CliRunner().invoke, app, argv, env=env)
