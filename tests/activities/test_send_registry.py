"""The send gate and the registry: only approved templates, under approved signatures, in the
customer's language. The real gate, store and carrier simulator over loopback."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.exceptions import ApplicationError

from activities.compliance.registry import Registry
from activities.routing import Router, build_router
from activities.send import SendActivities
from nudge.models import Category, MessageStatus, SendDecision, SendRequest
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.routes import RouteConfig, local_routes
from nudge.store import Message
from nudge.templates import BUILTIN_TEMPLATES
from tests.activities.conftest import SENDER
from tests.activities.sends import request, run
from tests.carrier import ledger
from tests.customers import add_customers, new_customer

CART_ZH = "${name}，购物车还在等您：${cart_url} 拒收请回复R"
CART_PARAMS = {"name": "Ada", "cart_url": "https://shop.example.com/c/1"}


@pytest.fixture
def sim_routes(carrier: str) -> list[RouteConfig]:
    """One route, on the simulator's own API: whatever the gate sends, the ledger shows as is."""
    return [RouteConfig(name="sim", provider="simulator", base_url=carrier, signature=SENDER)]


@pytest.fixture
def routes(sim_routes: list[RouteConfig]) -> list[RouteConfig]:
    return sim_routes


@pytest.fixture
def router(routes: list[RouteConfig], http: httpx.AsyncClient) -> Router:
    return build_router(routes, http, simulator_callback="http://127.0.0.1:9/v1/webhooks/simulator/status")


@pytest.fixture
async def registry(sessions: async_sessionmaker[AsyncSession], routes: list[RouteConfig]) -> Registry:
    registry = Registry(sessions, routes=routes)
    await registry.seed()
    return registry


@pytest.fixture
def gate(sessions: async_sessionmaker[AsyncSession], router: Router, registry: Registry) -> SendActivities:
    return SendActivities(
        sessions, router, link_base_url="https://n.example", registry=registry, quiet_hours=ALWAYS_OPEN
    )


@pytest.fixture(autouse=True)
async def customers(sessions: async_sessionmaker[AsyncSession]) -> None:
    await add_customers(
        sessions,
        new_customer("cn", "+8613800138000"),
        new_customer("zh", "+8613900139000", name="Cy", attributes={"language": "zh"}),
    )


async def stored(sessions: async_sessionmaker[AsyncSession]) -> list[Message]:
    async with sessions() as session:
        return list((await session.exec(select(Message))).all())


def cart(customer: str, **overrides: Any) -> SendRequest:
    return request(
        customer,
        template="cart_reminder",
        category=Category.MARKETING,
        params=CART_PARAMS,
        **overrides,
    )


async def test_gate_unapproved_template_is_blocked_and_never_sent(
    gate: SendActivities,
    registry: Registry,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """A draft template is blocked with its state as the reason; the carrier gets nothing."""
    await registry.put_template(
        "sale", body="Sale: ${url} Reply STOP to opt out", category=Category.MARKETING
    )
    result = await run(gate, request(template="sale", params={"url": "https://s.example"}))
    assert (result.decision, result.reason) == (SendDecision.BLOCKED, "template_not_approved:draft")
    [message] = await stored(sessions)
    assert (message.status, message.reason) == (MessageStatus.BLOCKED, "template_not_approved:draft")
    assert await ledger(http, carrier) == []


async def test_gate_edited_template_is_blocked_until_approved_again(
    gate: SendActivities, registry: Registry, http: httpx.AsyncClient, carrier: str
) -> None:
    """Editing an approved template stops it at once; approved again, the new text goes out."""
    await registry.put_template(
        "payment_success", body="Paid: order ${order_id}, ${amount}.", category=Category.TRANSACTIONAL
    )
    blocked = await run(gate, request())
    assert blocked.reason == "template_not_approved:draft"
    await registry.approve_template("payment_success")
    sent = await run(gate, request(idempotency_key="wf-cn/run/2"))
    assert sent.decision is SendDecision.SENT
    assert [e["body"] for e in await ledger(http, carrier)] == ["Paid: order o-1, 9.90."]


@pytest.mark.parametrize(
    ("signature", "reject"), [(None, True), ("Unknown Brand", False)], ids=["rejected", "unregistered"]
)
async def test_gate_signature_not_approved_blocks_the_message(
    gate: SendActivities,
    registry: Registry,
    http: httpx.AsyncClient,
    carrier: str,
    signature: str | None,
    reject: bool,
) -> None:
    """With the only route's signature rejected, or a journey's signature never registered, the
    message is blocked with the signature's name and nothing reaches the carrier."""
    if reject:
        await registry.reject_signature(SENDER, reason="qualification expired")
    result = await run(gate, request(signature=signature))
    assert (result.decision, result.reason) == (
        SendDecision.BLOCKED,
        f"signature_not_approved:{signature or SENDER}",
    )
    assert await ledger(http, carrier) == []


async def test_gate_zh_customer_gets_the_zh_variant(
    gate: SendActivities, registry: Registry, http: httpx.AsyncClient, carrier: str
) -> None:
    """A customer whose language is zh gets the approved zh variant; others the default."""
    await registry.put_template("cart_reminder", language="zh", body=CART_ZH, category=Category.MARKETING)
    await registry.approve_template("cart_reminder", "zh")
    await run(gate, cart("zh"))
    await run(gate, cart("cn"))
    bodies = {e["to"]: e["body"] for e in await ledger(http, carrier)}
    zh, default = bodies["+8613900139000"], bodies["+8613800138000"]
    assert zh.startswith("Ada，购物车还在等您：https://n.example/l/") and zh.endswith(" 拒收请回复R")
    assert default.startswith("Ada, your cart is waiting: https://n.example/l/")


async def test_gate_missing_variable_of_the_variant_fails_permanently(
    gate: SendActivities,
    registry: Registry,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    carrier: str,
) -> None:
    """The zh variant's own variable missing is a non-retryable TemplateError; nothing is stored
    or sent."""
    body = "${name}，优惠码 ${coupon}：${cart_url} 拒收请回复R"
    await registry.put_template("cart_reminder", language="zh", body=body, category=Category.MARKETING)
    await registry.approve_template("cart_reminder", "zh")
    with pytest.raises(ApplicationError, match="coupon") as failure:
        await run(gate, cart("zh"))
    assert (failure.value.type, failure.value.non_retryable) == ("TemplateError", True)
    assert await stored(sessions) == []
    assert await ledger(http, carrier) == []


class TestOnProviderRoutes:
    """The local Aliyun, Tencent and Twilio routes, where signatures are sign names."""

    @pytest.fixture
    def routes(self, carrier: str) -> list[RouteConfig]:
        return local_routes(carrier)

    async def test_gate_rejected_signature_skips_that_route(
        self, gate: SendActivities, registry: Registry, http: httpx.AsyncClient, carrier: str
    ) -> None:
        """With 努济 (Aliyun's zh signature) rejected, a zh customer's message skips Aliyun and goes
        out once on Tencent, under its approved signature."""
        await registry.reject_signature("努济", reason="qualification expired")
        result = await run(gate, request("zh"))
        assert (result.decision, result.route) == (SendDecision.SENT, "tencent-cn")
        [entry] = await ledger(http, carrier)
        assert (entry["provider"], entry["signature"]) == ("tencent", "Nudge")

    async def test_gate_template_signature_replaces_the_routes(
        self, gate: SendActivities, registry: Registry, http: httpx.AsyncClient, carrier: str
    ) -> None:
        """A template bound to 努济 goes out under 努济 on Aliyun, whatever the route's own is."""
        payment = BUILTIN_TEMPLATES["payment_success"]
        await registry.put_template(
            "payment_success",
            body=payment.body,
            category=payment.category,
            provider_codes=payment.provider_codes,
            signature="努济",
        )
        await registry.approve_template("payment_success")
        result = await run(gate, request("cn"))
        assert result.route == "aliyun-cn"
        [entry] = await ledger(http, carrier)
        assert entry["signature"] == "努济" and entry["body"].startswith("【努济】Payment received")
