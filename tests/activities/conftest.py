from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.routing import Router, build_router
from activities.send import SendActivities
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.routes import RouteConfig, local_routes
from nudge.store import session_factory
from tests.activities.sends import CN, US
from tests.customers import add_customers, new_customer

LINK_BASE_URL = "https://nudge.example.com/"
SENDER = "Nudge"


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


GateFactory = Callable[..., SendActivities]


@pytest.fixture
def make_sends(
    sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, carrier: str
) -> GateFactory:
    """Build the real send gate on the real store and the real simulator provider; keyword
    arguments (``caps``, ``clock``, ``quiet_hours``) override the test defaults."""

    def make(**overrides: Any) -> SendActivities:
        router = build_router(
            [RouteConfig(name="sim", provider="simulator", base_url=carrier, signature=SENDER)],
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


@pytest.fixture
def router(http: httpx.AsyncClient, carrier: str) -> Router:
    """The default local routes: Aliyun, then Tencent, then Aliyun backup for CN; Twilio for all."""
    return build_router(local_routes(carrier), http, breaker_threshold=2)


@pytest.fixture
async def customers(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Three customers: ``cn`` (mainland), ``us`` (Bo), ``zh`` (Cy, who reads Chinese)."""
    await add_customers(
        sessions,
        new_customer("cn", CN),
        new_customer("us", US, name="Bo"),
        new_customer("zh", "+8613900139000", name="Cy", attributes={"language": "zh"}),
    )
