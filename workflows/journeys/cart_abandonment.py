"""CartAbandonment: remind a customer who left a cart; a click without a purchase earns a coupon."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.journey import Journey, JourneyConfig, Reentry

with workflow.unsafe.imports_passed_through():
    from nudge.models import Event


class CartAbandonment(Journey):
    """Remind a customer who left a cart; a click without a purchase earns a coupon."""

    trigger = "cart_abandoned"
    key = "cart_id"
    goal = "order_paid"
    reentry = Reentry.after(timedelta(days=7))

    class Config(JourneyConfig):
        first_wait: timedelta = timedelta(hours=1)
        click_window: timedelta = timedelta(hours=24)
        coupon_delay: timedelta = timedelta(hours=2)
        conversion_window: timedelta = timedelta(hours=48)
        coupon_url: str = "https://shop.example.com/coupon/CART10"

    config: Config

    async def steps(self, event: Event) -> None:
        await self.sleep(self.config.first_wait)
        profile = await self.profile()
        name = profile.name or "there"
        cart_url = str(event.properties.get("url", "https://shop.example.com/cart"))
        reminder = await self.send_sms("cart_reminder", {"name": name, "cart_url": cart_url}, required=True)
        if not await reminder.clicked(timeout=self.config.click_window):
            self.exit("no_reaction")
        await self.sleep(self.config.coupon_delay)
        await self.send_sms("cart_coupon", {"name": name, "coupon_url": self.config.coupon_url})
        # Stay around so that a purchase is attributed to the coupon (the goal ends us early).
        await self.sleep(self.config.conversion_window)
        self.exit("no_purchase")
