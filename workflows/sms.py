"""What ``Journey.send_sms`` returns: the gate's decision, and waits for the receipt or the click."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.policies import SEND_RETRY, SEND_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from nudge.contracts import send_message
    from nudge.models import MessageStatus, SendDecision, SendRequest, SendResult, SentMessage

if TYPE_CHECKING:
    from workflows.journey import Journey


LOCAL_SEND_PATCH = "local-send"
"""Before it, a send was a regular activity (a wire name: never rename)."""


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


async def send(request: SendRequest) -> SendResult:
    """One call of the send gate for ``Journey.send_sms``."""
    if workflow.patched(LOCAL_SEND_PATCH):
        # A local activity: the worker runs the send inside the workflow task that asks for
        # it, with no activity task through the server and no second workflow task for its
        # result. Safe to run again after a lost workflow task: the send is idempotent by its
        # key and reconciles an in-doubt attempt.
        return await workflow.execute_local_activity(
            send_message,
            request,
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=SEND_RETRY,
            summary=f"send {request.template}",
        )
    return await workflow.execute_activity(
        send_message,
        request,
        start_to_close_timeout=SEND_TIMEOUT,
        retry_policy=SEND_RETRY,
        summary=f"send {request.template}",
    )
