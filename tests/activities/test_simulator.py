"""The carrier simulator over loopback: ledger, receipts and simulated clicks."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from simulator.app import SimConfig, create_app
from tests.polling import wait_until
from tests.servers import serve


def _callback_app(received: list[dict[str, Any]], clicks: list[str]) -> FastAPI:
    app = FastAPI()

    @app.post("/status")
    async def status(body: dict[str, Any]) -> dict[str, bool]:
        received.append(body)
        return {"ok": True}

    @app.get("/l/{code}")
    async def link(code: str) -> RedirectResponse:
        clicks.append(code)
        return RedirectResponse("https://shop.example.com/", status_code=302)

    return app


async def test_simulator_click_rate_clicks_a_share_of_links() -> None:
    """With click_rate=1 every message's link is clicked; with 0 none is; receipts arrive."""
    received: list[dict[str, Any]] = []
    clicks: list[str] = []
    # Clicks come 90 ms before receipts: a click that should not happen would be in before the
    # receipts that the test waits for.
    sim_app = create_app(SimConfig(latency_ms=0, receipt_delay_ms=100, click_delay_ms=10, click_rate=1.0))
    async with (
        serve(_callback_app(received, clicks)) as base,
        serve(sim_app) as sim,
        httpx.AsyncClient(base_url=sim) as http,
    ):
        for i, rate in enumerate((1.0, 0.0)):
            await http.post("/_sim/config", json={"click_rate": rate})
            r = await http.post(
                "/v1/messages",
                json={
                    "client_ref": f"m{i}",
                    "to": "+8613800138000",
                    "from": "Nudge",
                    "body": f"hi {base}/l/code{i}",
                    "status_callback": f"{base}/status",
                },
            )
            assert r.status_code == 202

        async def ledger() -> list[dict[str, Any]]:
            entries: list[dict[str, Any]] = (await http.get("/_sim/ledger")).json()
            return entries

        async def settled() -> bool:
            # The carrier notes a click in its ledger only once the redirect has come back.
            return len(received) >= 2 and bool((await ledger())[0]["clicked"])

        await wait_until(settled, what="both receipts and the first message's click")
        entries = await ledger()
    assert clicks == ["code0"]
    assert [len(m["clicked"]) for m in entries] == [1, 0]
    assert sorted(r["client_ref"] for r in received) == ["m0", "m1"]
    assert all(r["status"] == "delivered" for r in received)
