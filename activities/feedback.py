"""What receipts, replies and clicks share: the signal to the journey that waits for a message,
and complaint counting that never fails the feedback it comes with."""

from __future__ import annotations

from collections.abc import Awaitable

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from nudge.contracts import MESSAGE
from nudge.logging import get_logger
from nudge.models import MessageUpdate

log = get_logger(__name__)


async def signal_journey(client: Client, workflow_id: str, update: MessageUpdate) -> None:
    """Tell the journey that sent the message what became of it; a journey that has ended
    meanwhile has nothing left to wait for."""
    try:
        await MESSAGE.send(client.get_workflow_handle(workflow_id), update)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        log.info("signal_skipped_journey_closed", workflow_id=workflow_id)


async def count_complaint(counting: Awaitable[object]) -> None:
    """Counting a complaint never fails the receipt or the reply: the provider would only
    deliver it again."""
    try:
        await counting
    except Exception:  # noqa: BLE001 - logged; the receipt or reply is stored either way
        log.exception("complaint_not_recorded")
