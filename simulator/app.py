"""The carrier simulator: accepts sends, keeps a ledger, posts receipts and plays customers.

Native API (what ``activities/providers/simulator.py`` speaks):
- ``POST /v1/messages`` ``{client_ref, to, from, body, status_callback}`` -> ``{id, status, segments}``
- ``GET /v1/messages?client_ref=...`` finds a message sent earlier (for reconciliation)

Control API for tests and the demo (under ``/_sim``):
- ``GET /_sim/ledger`` every message received, in order: the ground truth to count against
- ``POST /_sim/config`` latency, failure rate, receipt delay, and which numbers click links
- ``POST /_sim/reset`` empties the ledger
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field

from nudge.logging import get_logger
from nudge.phone import mask
from nudge.segments import count_segments

log = get_logger("simulator")
_LINK = re.compile(r"https?://\S+/l/[A-Za-z0-9_\-]+")


class SendBody(BaseModel):
    client_ref: str = Field(min_length=1)
    to: str = Field(pattern=r"^\+[1-9]\d{6,14}$")
    sender: str = Field(alias="from", min_length=1)
    body: str = Field(min_length=1, max_length=1600)
    status_callback: str | None = None


class SimConfig(BaseModel):
    latency_ms: float = 20.0
    receipt_delay_ms: float = 300.0
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    click_numbers: list[str] = Field(default_factory=list)
    """Numbers whose customer clicks every link they receive."""
    click_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of all other messages whose links the simulated customer clicks."""
    click_delay_ms: float = 500.0
    fail_numbers: list[str] = Field(default_factory=list)
    """Numbers whose messages are accepted and then reported undelivered."""


class LedgerEntry(BaseModel):
    id: str
    client_ref: str
    to: str
    sender: str
    body: str
    segments: int
    received_at: datetime
    status: str = "accepted"
    clicked: list[str] = Field(default_factory=list)


class Carrier:
    """State of the simulated carrier."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.ledger: list[LedgerEntry] = []
        self.by_ref: dict[str, LedgerEntry] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._client = httpx.AsyncClient(timeout=10)

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._client.aclose()

    async def receipt(self, entry: LedgerEntry, callback: str) -> None:
        await asyncio.sleep(self.config.receipt_delay_ms / 1000)
        failed = entry.to in self.config.fail_numbers
        entry.status = "undelivered" if failed else "delivered"
        payload = {
            "id": entry.id,
            "client_ref": entry.client_ref,
            "to": entry.to,
            "status": entry.status,
            "error_code": "30003" if failed else None,
            "at": datetime.now(UTC).isoformat(),
        }
        for attempt in range(5):
            try:
                response = await self._client.post(callback, json=payload)
                if response.status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2 * 2**attempt)
        log.warning("receipt_undeliverable", message_id=entry.id)

    async def click(self, entry: LedgerEntry) -> None:
        await asyncio.sleep(self.config.click_delay_ms / 1000)
        for url in _LINK.findall(entry.body):
            try:
                response = await self._client.get(url, follow_redirects=False)
                if response.status_code in (301, 302, 303, 307):
                    entry.clicked.append(url)
                    log.info("link_clicked", message_id=entry.id, to=mask(entry.to))
            except httpx.HTTPError as exc:
                log.warning("click_failed", message_id=entry.id, error=str(exc))


def create_app(config: SimConfig | None = None) -> FastAPI:
    carrier = Carrier(config or SimConfig())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await carrier.close()

    app = FastAPI(title="Nudge carrier simulator", version="0.1.0", lifespan=lifespan)
    app.state.carrier = carrier

    @app.post("/v1/messages", status_code=202)
    async def send(body: SendBody) -> dict[str, Any]:
        cfg = carrier.config
        received_at = datetime.now(UTC)  # when the request arrived, before the simulated latency
        if cfg.latency_ms:
            await asyncio.sleep(random.expovariate(1 / cfg.latency_ms) / 1000)
        if cfg.failure_rate and random.random() < cfg.failure_rate:
            raise HTTPException(503, detail={"code": "unavailable", "message": "carrier busy"})
        entry = LedgerEntry(
            id="SIM" + uuid.uuid4().hex[:20],
            client_ref=body.client_ref,
            to=body.to,
            sender=body.sender,
            body=body.body,
            segments=count_segments(body.body),
            received_at=received_at,
        )
        carrier.ledger.append(entry)
        carrier.by_ref.setdefault(body.client_ref, entry)
        if body.status_callback:
            carrier.spawn(carrier.receipt(entry, body.status_callback))
        if body.to in cfg.click_numbers or (cfg.click_rate and random.random() < cfg.click_rate):
            carrier.spawn(carrier.click(entry))
        return {"id": entry.id, "status": "accepted", "segments": entry.segments}

    @app.get("/v1/messages")
    async def lookup(client_ref: str = Query(min_length=1)) -> dict[str, Any]:
        entry = carrier.by_ref.get(client_ref)
        if entry is None:
            raise HTTPException(404, detail={"code": "not_found", "message": "no such message"})
        return {"id": entry.id, "status": entry.status, "segments": entry.segments}

    @app.get("/_sim/ledger")
    async def ledger() -> list[LedgerEntry]:
        return carrier.ledger

    @app.get("/_sim/config")
    async def get_config() -> SimConfig:
        return carrier.config

    @app.post("/_sim/config")
    async def set_config(update: dict[str, Any]) -> SimConfig:
        carrier.config = SimConfig.model_validate({**carrier.config.model_dump(), **update})
        return carrier.config

    @app.post("/_sim/reset")
    async def reset() -> dict[str, int]:
        dropped = len(carrier.ledger)
        carrier.ledger.clear()
        carrier.by_ref.clear()
        return {"dropped": dropped}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
