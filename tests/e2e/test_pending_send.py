"""End to end: a send whose provider failed ambiguously waits for the route's lookup grace (a
setting), and ``nudge journeys`` says what it waits for."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from nudge.store import create_engine, session_factory
from starter.cli.journeys import fetch
from tests.e2e.conftest import running_stack
from tests.e2e.test_cart_journey import _client, _customer_event, _wait_for

pytestmark = pytest.mark.e2e


async def test_a_send_waiting_for_the_lookup_grace_says_so(tmp_path: Path) -> None:
    """Every provider answers 5xx (the send may have gone out), so the retry asks the route first;
    the route does not list it, and with a lookup grace of 600 s set for Aliyun and Tencent the
    retry waits: the journey's row names the activity, the attempt and what it waits for."""
    graces = json.dumps({"aliyun": 600, "tencent": 600})
    with running_stack(tmp_path / "stack", NUDGE_LOOKUP_GRACES=graces) as stack:
        customer = f"pend-{uuid.uuid4().hex[:6]}"
        async with (
            httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=30) as gw,
            httpx.AsyncClient(base_url=stack.simulator_url, timeout=30) as sim,
        ):
            (await sim.post("/_sim/config", json={"failure_rate": 1.0})).raise_for_status()
            await _customer_event(gw, customer, "+8613700137000", "order_paid", order_id="o1", amount="5")
        client = await _client(stack)
        engine = create_engine(stack.client_settings.sqlalchemy_url)
        try:

            async def waiting() -> str:
                rows = await fetch(client, customer, session_factory(engine))
                return next((r.detail for r in rows if "does not list it yet" in r.detail), "")

            detail = await _wait_for(waiting, timeout=60, every=0.5)
        finally:
            await engine.dispose()
        [line] = [line for line in detail.splitlines() if "does not list it yet" in line]
        assert line.startswith("payment_success: aliyun-cn answered ambiguously"), detail
        # The grace is the setting's (600 s), not the default (Aliyun 60 s, Tencent 300 s).
        assert line.endswith("(lookup grace 600 s)"), detail
