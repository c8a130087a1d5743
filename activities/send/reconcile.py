"""Reconciliation: before a pending message is sent again, ask the route an earlier attempt called.

An attempt that called a provider and never learned the answer (a timeout after the carrier
accepted it, a crash before the answer was stored) leaves the message ``pending`` on that route
with no ``not_sent:`` reason. If the route has it, the store must say so, whatever the gate would
say now; only when it does not is the message sent again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.routing import Router
from nudge.logging import get_logger
from nudge.store import Message
from nudge.templates import Template

from .compose import Composer
from .ledger import Ledger

log = get_logger(__name__)


class Reconciler:
    def __init__(
        self, *, router: Router, composer: Composer, ledger: Ledger, clock: Callable[[], datetime]
    ) -> None:
        self._router = router
        self._composer = composer
        self._ledger = ledger
        self._clock = clock

    async def reconcile(self, message: Message, template: Template) -> Message | None:
        """The row as submitted when the route has the message; None when it may be sent again.

        Providers' lookups lag behind their sends (Tencent lists a message only once it has a
        report). "Not found" counts as "not sent" only after the route's ``lookup_grace`` since
        that attempt; before then the attempt fails retryably and comes back when it is over.
        """
        route = self._router.by_name.get(message.route or "")
        if route is None:
            return None
        since = message.updated_at - timedelta(seconds=5)
        submission = await route.provider.lookup(
            self._composer.outbound(message, route, template), since=since
        )
        if submission is not None and not await self._ledger.claimed_by_another(message, submission):
            log.info(
                "send_reconciled", message_id=message.id, route=route.name, attempt=activity.info().attempt
            )
            return await self._ledger.record_submission(message.id, route, submission)
        waited = (self._clock() - message.updated_at).total_seconds()
        grace = route.provider.lookup_grace
        if waited < grace:
            until = message.updated_at + timedelta(seconds=grace)
            await self._ledger.note_waiting(
                message.id,
                f"{route.name} answered ambiguously and does not list it yet; sent again at "
                f"{until:%Y-%m-%d %H:%M:%S} UTC unless it does (lookup grace {grace:.0f} s)",
            )
            raise ApplicationError(
                f"{route.name} does not list the message yet; looking again in {grace - waited:.0f} s "
                "before sending it again",
                type="ReconcilePending",
                next_retry_delay=timedelta(seconds=max(1.0, grace - waited)),
            )
        log.warning(
            "send_not_found_resending", message_id=message.id, route=route.name, waited_s=round(waited)
        )
        return None
