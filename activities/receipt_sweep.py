"""The receipt sweep: messages whose receipt never came are looked up in their provider's status API.

A receipt can be lost for good: the gateway was down for longer than the provider redelivers, a
proxy dropped it, the provider never sent one. A message without a final status some time after
its provider took it is asked about through the route that sent it (Aliyun QuerySendDetails,
Tencent's status pull, Twilio's message fetch); a final status found there is applied exactly as
a receipt would be (stored, moving the status forward only, signalled to a journey that waits),
so a ``PaymentSuccess`` journey learns "delivered" for a message the carrier delivered.

The worker runs it from a Temporal schedule (``workflows/maintenance.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, or_, select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.providers.base import Delivery, StatusQuery
from activities.receipts import Receipts
from activities.routing import Router
from nudge.contracts import ReceiptSweep, SweepReport
from nudge.logging import get_logger
from nudge.models import MessageStatus
from nudge.store import Message, read_sessions

log = get_logger(__name__)

WAITING = (MessageStatus.SUBMITTED.value, MessageStatus.SENT.value)
"""Statuses a receipt would still move forward."""
CONCURRENCY = 16
"""Status API calls in flight at once. They take no token of the route's send rate limit: the
providers limit their status APIs apart from sends (Twilio counts all calls against one account
concurrency limit, which 16 leaves room under)."""


class ReceiptSweeper:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        router: Router,
        receipts: Receipts,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._reads = read_sessions(sessions)
        self._router = router
        self._receipts = receipts
        self._clock = clock

    @activity.defn(name="reconcile_receipts")
    async def reconcile_receipts(self, sweep: ReceiptSweep) -> SweepReport:
        now = self._clock()
        due = now - sweep.after
        async with self._reads() as session:
            rows = await session.exec(
                select(Message)
                .where(
                    col(Message.status).in_(WAITING),
                    col(Message.updated_at) <= due,
                    col(Message.updated_at) >= now - sweep.within,
                    or_(col(Message.status_checked_at).is_(None), col(Message.status_checked_at) <= due),
                    # An erased customer's message has no number left to ask about.
                    col(Message.to).is_not(None),
                )
                # Longest unasked first: a message asked about before waits behind one never asked.
                .order_by(func.coalesce(col(Message.status_checked_at), col(Message.updated_at)))
                .limit(sweep.limit + 1)
            )
            found = list(rows.all())
        report = SweepReport(more=len(found) > sweep.limit)
        messages = found[: sweep.limit]
        if not messages:
            return report
        gate = asyncio.Semaphore(CONCURRENCY)

        async def ask(message: Message) -> None:
            async with gate:
                delivery = await self._ask(message, report)
                if delivery is not None:
                    try:
                        await self._receipts.receive(
                            provider=message.provider or "",
                            message_id=message.id,
                            provider_message_id=message.provider_message_id,
                            status=delivery.status,
                            error_code=delivery.error_code,
                            at=delivery.at,
                            raw={"source": "status_api", **delivery.raw},
                        )
                    except Exception as exc:  # noqa: BLE001 - one message's failure must not stop the sweep
                        report.failed += 1
                        log.warning("receipt_reconcile_not_applied", message_id=message.id, error=str(exc))
                    else:
                        report.reconciled += 1
                activity.heartbeat(report.checked)

        try:
            await asyncio.gather(*(ask(m) for m in messages))
        finally:
            # Asked (or not askable): each waits a full ``after`` before it is asked again.
            async with self._sessions() as session:
                await session.exec(
                    update(Message)
                    .where(col(Message.id).in_([m.id for m in messages]))
                    .values(status_checked_at=now)
                )
                await session.commit()
        log.info(
            "receipts_reconciled",
            checked=report.checked,
            reconciled=report.reconciled,
            failed=report.failed,
            more=report.more,
        )
        return report

    async def _ask(self, message: Message, report: SweepReport) -> Delivery | None:
        route = self._router.by_name.get(message.route or "")
        if route is None or route.config.provider != message.provider or message.to is None:
            # The route that sent it is gone from the configuration: nobody to ask.
            log.warning("receipt_sweep_no_route", message_id=message.id, route=message.route)
            return None
        report.checked += 1
        query = StatusQuery(
            message_id=message.id,
            to=message.to,
            provider_message_id=message.provider_message_id,
            # A lower bound: the row is made before the send (the provider took it at its last change).
            sent_at=message.created_at,
        )
        try:
            delivery = await route.provider.fetch_status(query)
        except Exception as exc:  # noqa: BLE001 - one provider's failure must not stop the sweep
            report.failed += 1
            log.warning(
                "receipt_status_lookup_failed", message_id=message.id, route=route.name, error=str(exc)
            )
            return None
        if delivery is None or not delivery.status.terminal:
            return None
        return delivery
