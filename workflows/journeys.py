"""The example journeys: cart abandonment, payment success and onboarding.

Each reads like the story it tells; the runtime handles goals, exits, step names and idempotency.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.journey import Journey, JourneyConfig, Reentry

with workflow.unsafe.imports_passed_through():
    from nudge.models import Category, Event, MessageStatus


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


class PaymentSuccess(Journey):
    """A transactional confirmation, sent at once for every paid order."""

    trigger = "order_paid"
    key = "order_id"
    reentry = Reentry.NEVER
    category = Category.TRANSACTIONAL

    class Config(JourneyConfig):
        await_receipt: bool = True
        """Wait for the delivery receipt, so that ops see undelivered confirmations."""
        receipt_window: timedelta = timedelta(minutes=30)
        """How long to wait for the delivery receipt before the journey reports it undelivered."""

    config: Config

    async def steps(self, event: Event) -> None:
        order_id = str(event.properties.get("order_id", "?"))
        amount = event.properties.get("amount", "")
        if not workflow.patched("payment-receipt"):
            # Journeys started before receipts were awaited: send and end, as they did then.
            await self.send_sms("payment_success", {"order_id": order_id, "amount": amount}, required=True)
            return
        confirmation = await self.send_sms(
            "payment_success",
            {"order_id": order_id, "amount": amount},
            required=True,
            notify_receipt=self.config.await_receipt,
        )
        if not self.config.await_receipt:
            return
        status = await confirmation.receipt(timeout=self.config.receipt_window)
        if status is not MessageStatus.DELIVERED:
            self.exit(f"undelivered:{status or 'no_receipt'}")


class HelpReply(Journey):
    """Answer a HELP or INFO reply with the brand and a contact (the ``help_reply`` template).

    At most one answer per customer in ``reentry``: a HELP that an auto-responder bounces back
    must not start a loop of replies.
    """

    trigger = "help_requested"
    reentry = Reentry.after(timedelta(minutes=10))
    category = Category.TRANSACTIONAL

    async def steps(self, event: Event) -> None:
        await self.send_sms("help_reply", required=True)


class Onboarding(Journey):
    """Welcome a new customer: returning customers get a welcome back, new ones an A/B welcome."""

    trigger = "signed_up"
    goal = "order_paid"
    reentry = Reentry.NEVER

    class Config(JourneyConfig):
        welcome_delay: timedelta = timedelta(minutes=5)
        activation_window: timedelta = timedelta(days=3)
        start_url: str = "https://shop.example.com/start"

    config: Config

    async def steps(self, event: Event) -> None:
        await self.sleep(self.config.welcome_delay)
        profile = await self.profile()
        name = profile.name or "there"
        if profile.lifecycle_stage in ("returning", "dormant"):
            await self.send_sms("welcome_back", {"name": name, "start_url": self.config.start_url})
        else:
            variant = self.split("welcome_copy", {"a": 50, "b": 50})
            await self.send_sms(f"welcome_{variant}", {"name": name, "start_url": self.config.start_url})
        await self.sleep(self.config.activation_window)
        self.exit("not_activated")
