"""What ``Journey.send_sms`` returns: the gate's decision, and waits for the receipt or the click."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from nudge.models import MessageStatus, SendDecision, SendResult, SentMessage

if TYPE_CHECKING:
    from workflows.journey import Journey


class SmsHandle:
    """What ``send_sms`` returns: the gate's decision, and waits for the receipt or the click."""

    def __init__(
        self, journey: Journey, record: SentMessage, result: SendResult, *, notifies_receipt: bool
    ) -> None:
        self._journey = journey
        self.record = record
        self.result = result
        self._notifies_receipt = notifies_receipt

    @property
    def message_id(self) -> str:
        return self.record.message_id

    @property
    def sent(self) -> bool:
        """False when the gate blocked the message; ``reason`` says why."""
        return self.record.decision is SendDecision.SENT

    @property
    def reason(self) -> str | None:
        return self.record.reason

    @property
    def decision(self) -> SendDecision:
        """``sent``, ``blocked``, ``suppressed``, ``capped`` (or ``deferred``, never returned)."""
        return self.record.decision

    @property
    def capped(self) -> bool:
        """A frequency cap refused the message; ``retry_at`` says when it has room again."""
        return self.record.decision is SendDecision.CAPPED

    @property
    def retry_at(self) -> datetime | None:
        return self.result.retry_at

    async def clicked(self, *, timeout: timedelta) -> bool:
        """Wait up to ``timeout`` for a click on any link in the message."""
        if not self.sent:
            return False
        return await self._journey._wait(
            lambda: self.record.clicked,
            timeout,
            step=f"wait:click:{self.record.template}",
            detail=f"waiting for a click on {self.record.template}",
        )

    async def receipt(self, *, timeout: timedelta) -> MessageStatus | None:
        """Wait up to ``timeout`` for a final receipt; needs ``send_sms(..., notify_receipt=True)``."""
        if not self.sent:
            return None
        if not self._notifies_receipt:
            raise ApplicationError(
                "receipt() needs send_sms(..., notify_receipt=True): receipts are only signalled "
                "to journeys that asked for them",
                type="JourneyDefinitionError",
                non_retryable=True,
            )
        await self._journey._wait(
            lambda: self.record.status is not None and self.record.status.terminal,
            timeout,
            step=f"wait:receipt:{self.record.template}",
            detail=f"waiting for the receipt of {self.record.template}",
        )
        return self.record.status if self.record.status and self.record.status.terminal else None

    async def delivered(self, *, timeout: timedelta) -> bool:
        """Wait up to ``timeout`` for a delivery receipt; True only when delivered."""
        return await self.receipt(timeout=timeout) is MessageStatus.DELIVERED
