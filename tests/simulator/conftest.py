"""A simulator and a callback receiver, both served on loopback for each test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from simulator.app import Carrier, SimConfig, create_app
from tests.servers import serve

ACKS: dict[str, dict[str, Any]] = {
    "aliyun": {"code": 0, "msg": "接收成功"},
    "tencent": {"result": 0, "errmsg": "OK"},
}


@dataclass
class Received:
    """One callback as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode(), keep_blank_values=True)


@dataclass
class Receiver:
    """Plays the sender's webhook endpoints: records every POST and answers as the provider expects."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    clicks: list[str] = field(default_factory=list)
    fail_next: int = 0
    """How many of the next posts to answer with HTTP 500."""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on every post or click."""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def capture(path: str, request: Request) -> Response:
            if self.fail_next:
                self.fail_next -= 1
                return JSONResponse({"error": "busy"}, status_code=500)
            self.received.append(Received("/" + path, dict(request.headers), await request.body()))
            self.arrived.set()
            return JSONResponse(ACKS.get(path.split("/")[0], {}))

        @app.get("/l/{code}")
        async def link(code: str) -> RedirectResponse:
            self.clicks.append(code)
            self.arrived.set()
            return RedirectResponse("https://shop.example.com/", status_code=302)

        return app

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def until(self, done: Callable[[], bool], timeout: float = 3.0) -> None:
        """Wait until ``done()`` holds, checking whenever something arrives."""
        async with asyncio.timeout(timeout):
            while not done():
                self.arrived.clear()
                await self.arrived.wait()

    async def wait_for(self, path: str, count: int = 1) -> list[Received]:
        """The callbacks posted to ``path`` once there are ``count`` of them."""
        await self.until(lambda: len(self.at(path)) >= count)
        return self.at(path)


@dataclass
class Sim:
    """A running simulator: its URL, a client for it and its carrier."""

    url: str
    http: httpx.AsyncClient
    carrier: Carrier

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    async def configure(self, **update: Any) -> None:
        response = await self.http.post("/_sim/config", json=update)
        assert response.status_code == 200, response.text

    async def ledger(self, **filters: str) -> list[dict[str, Any]]:
        response = await self.http.get("/_sim/ledger", params=filters)
        assert response.status_code == 200, response.text
        entries: list[dict[str, Any]] = response.json()
        return entries


def _config(receiver_url: str) -> SimConfig:
    """No latency, 20 ms receipts and every callback URL on the receiver."""
    return SimConfig(
        latency_ms=0,
        receipt_delay_ms=20,
        click_delay_ms=10,
        aliyun_report_url=f"{receiver_url}/aliyun/report",
        aliyun_up_url=f"{receiver_url}/aliyun/up",
        tencent_report_url=f"{receiver_url}/tencent/report",
        tencent_reply_url=f"{receiver_url}/tencent/reply",
        twilio_inbound_url=f"{receiver_url}/twilio/inbound",
    )


@pytest.fixture(scope="package")
async def receiver() -> AsyncIterator[Receiver]:
    """One receiver for the package; ``sim`` clears it before each test."""
    receiver = Receiver()
    async with serve(receiver.app()) as url:
        receiver.url = url
        yield receiver


@pytest.fixture(scope="package")
async def running_sim(receiver: Receiver) -> AsyncIterator[Sim]:
    app = create_app(_config(receiver.url))
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=5, trust_env=False) as http:
        yield Sim(url=url, http=http, carrier=app.state.carrier)


@pytest.fixture
async def sim(running_sim: Sim, receiver: Receiver) -> Sim:
    """The package's simulator, reset to the test configuration with an empty ledger and receiver."""
    assert (await running_sim.http.post("/_sim/reset")).status_code == 200
    await running_sim.configure(**_config(receiver.url).model_dump())
    receiver.received.clear()
    receiver.clicks.clear()
    receiver.fail_next = 0
    return running_sim
