"""PaymentSuccess: a transactional confirmation, sent at once for every paid order."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.journey import Journey, JourneyConfig, Reentry

with workflow.unsafe.imports_passed_through():
    from nudge.models import Category, Event, MessageStatus


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
