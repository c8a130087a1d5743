from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from httpx_aiohttp import AiohttpTransport
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.routing import build_router
from activities.send import SendActivities
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.routes import RouteConfig
from nudge.store import session_factory
from simulator.app import SimConfig, create_app
from tests.servers import serve

LINK_BASE_URL = "https://nudge.example.com/"
SENDER = "Nudge"


class LosesResponses(httpx.AsyncBaseTransport):
    """The production transport, except that it can lose the carrier's answer to a send.

    ``lose_next_send()`` makes the next ``POST /v1/messages`` reach the carrier, which accepts
    it, and then fail on our side as a read timeout: the ambiguous failure a retry must reconcile.
    """

    def __init__(self) -> None:
        self._inner = AiohttpTransport()
        self._lose = 0

    def lose_next_send(self) -> None:
        self._lose += 1

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if self._lose and request.method == "POST" and request.url.path == "/v1/messages":
            self._lose -= 1
            await response.aread()
            await response.aclose()
            raise httpx.ReadTimeout("the carrier's answer was lost", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture
async def carrier_url() -> AsyncIterator[str]:
    """The real carrier simulator on loopback; receipts are held back past the test's end."""
    async with serve(create_app(SimConfig(latency_ms=0, receipt_delay_ms=600_000))) as url:
        yield url


@pytest.fixture
def transport() -> LosesResponses:
    return LosesResponses()


@pytest.fixture
async def http(transport: LosesResponses) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0), trust_env=False) as client:
        yield client


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


GateFactory = Callable[..., SendActivities]


@pytest.fixture
def make_sends(
    sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, carrier_url: str
) -> GateFactory:
    """Build the real send gate on the real store and the real simulator provider; keyword
    arguments (``caps``, ``clock``, ``quiet_hours``) override the test defaults."""

    def make(**overrides: Any) -> SendActivities:
        router = build_router(
            [RouteConfig(name="sim", provider="simulator", base_url=carrier_url, signature=SENDER)],
            http,
            simulator_callback="http://127.0.0.1:9/v1/webhooks/simulator/status",
        )
        options: dict[str, Any] = {"link_base_url": LINK_BASE_URL, "quiet_hours": ALWAYS_OPEN} | overrides
        return SendActivities(sessions, router, **options)

    return make


@pytest.fixture
def sends(make_sends: GateFactory) -> SendActivities:
    """The real send gate on the real store and the real simulator provider."""
    return make_sends()
