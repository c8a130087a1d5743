"""Journeys used only by tests (kept in their own module so the sandbox can import them)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.journey import Journey

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from nudge.models import Category, Event
    from nudge.templates import Template


class WaitsForUndeclared(Journey):
    trigger = "test_started"

    async def steps(self, event: Event) -> None:
        await self.wait_for("never_declared", timeout=timedelta(hours=1))


class Basket(BaseModel):
    """What ``TypedProperties`` reads its trigger's properties as."""

    basket_id: str
    items: int
    url: str = "https://shop.example.com/basket"


class SendsOptionNamedVariables(Journey):
    """Sends a template whose variables are named like send options, then a required send."""

    trigger = "options_test"
    category = Category.TRANSACTIONAL

    async def steps(self, event: Event) -> None:
        await self.send_sms("route_notice", {"route": "r9", "variant": "v9", "caps": "c9"})
        await self.send_sms("must_go", required=True)
        await self.send_sms("after_required")


class TypedProperties(Journey):
    """Reads its trigger's properties as a model and sends them."""

    trigger = "basket_filled"
    category = Category.TRANSACTIONAL
    reentry = timedelta(hours=1)
    templates = (
        Template("basket", "${items} items are waiting in your basket: ${url}", Category.TRANSACTIONAL),
        Template("basket", "购物车里还有${items}件商品：${url}", Category.TRANSACTIONAL, language="zh"),
    )

    async def steps(self, event: Event) -> None:
        basket = event.parse(Basket)
        await self.send_sms("basket", {"items": basket.items, "url": basket.url})


class SplitsCopy(Journey):
    """Splits the customer between two copies of a welcome, then sends that variant's template."""

    trigger = "split_test"
    category = Category.TRANSACTIONAL

    async def steps(self, event: Event) -> None:
        variant = await self.split(
            "welcome_copy", {"a": 0.5, "b": 0.5}, bandit=bool(event.properties.get("bandit"))
        )
        await self.send_sms(f"welcome_{variant}")
        await self.send_sms("welcome_follow_up")
