"""A broadcast batch's gate: which pending recipients may go now, and why the others may not.

The journey's own checks run per recipient, in their order (``Gate.compliance``, then the
broadcast's ``local_time``, then ``Gate.timing``); then the caps are taken for the whole batch at
once, in one locked transaction (``BatchRows.reserve``). Each refusal is a ``Decision``: blocked,
or deferred until a time. A paused template, journey or signature defers its recipients (a resume
lets them go at the next sweep); a wait that would end after the deadline expires at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from activities.send.gate import Attempt, Gate
from activities.send.outcome import DEFERRED
from nudge.broadcasts import BatchRequest
from nudge.models import FrequencyCap
from nudge.quiet_hours import local_time_after, recipient_zone
from nudge.store import Message

from .rows import BatchRows, Decision

PAUSE_RECHECK = timedelta(minutes=10)
"""How long a paused broadcast recipient waits before the next sweep looks again."""
EXPIRED = "expired:"
"""The reason's prefix of a recipient who will not be sent: its wait ran past the deadline, or
``expire_broadcast`` ended it."""


class BatchGate:
    """The gate's checks for a batch, on its rows.

    Args:
        gate: the journey's gate, whose checks a broadcast's recipients pass too.
        rows: the batch's rows, where the refusals and the caps' places are written.
        caps: the frequency caps, taken for the whole batch at once.
    """

    def __init__(self, *, gate: Gate, rows: BatchRows, caps: Sequence[FrequencyCap]) -> None:
        self._gate = gate
        self._rows = rows
        self._caps = list(caps)

    async def admit(self, attempts: Sequence[Attempt], request: BatchRequest, now: datetime) -> list[Attempt]:
        """The attempts that may go now; every other's refusal is recorded on its row."""
        decisions: list[Decision] = []
        passing: list[Attempt] = []
        for attempt in attempts:
            decision = await self.judge(attempt, request, now)
            if decision is None:
                passing.append(attempt)
            else:
                decisions.append(decision)
        # A row that took its place under the caps before a crash keeps it.
        full = await self._rows.reserve(
            [a.message for a in passing if a.message.cap_reserved_at is None], self._caps, now=now
        )
        for attempt in list(passing):
            cap = full.get(attempt.message.customer_id)
            if cap is not None:
                passing.remove(attempt)
                reason, frees_at = cap
                decisions.append(within_deadline(attempt.message, f"{DEFERRED}{reason}", frees_at, request))
        await self._rows.decide(decisions)
        return passing

    async def judge(self, attempt: Attempt, request: BatchRequest, now: datetime) -> Decision | None:
        """The journey's checks in their order, with the broadcast's own ``local_time`` before
        the quiet hours; None when the message may go (caps aside)."""
        for check in self._gate.compliance:
            refusal = await check(attempt)
            if refusal is not None:
                if refusal.reason.startswith("paused:"):
                    return within_deadline(
                        attempt.message, f"{DEFERRED}{refusal.reason}", now + PAUSE_RECHECK, request
                    )
                return Decision(attempt.message, refusal.reason)
        spec = request.spec
        if spec.local_time is not None and attempt.message.to:
            customer = attempt.standing.customer
            zone = recipient_zone(attempt.message.to, profile_zone=customer.timezone if customer else None)
            target = local_time_after(request.started_at, spec.local_time, zone)
            if target > now:
                return within_deadline(attempt.message, f"{DEFERRED}local_time", target, request)
        for check in self._gate.timing:
            refusal = await check(attempt)
            if refusal is not None:
                if refusal.until is None:
                    return Decision(attempt.message, refusal.reason)
                return within_deadline(attempt.message, f"{DEFERRED}{refusal.reason}", refusal.until, request)
        return None


def within_deadline(message: Message, reason: str, until: datetime | None, request: BatchRequest) -> Decision:
    """Wait until then, unless that is after the deadline (or never): expired at once."""
    if until is None or until > request.deadline:
        return Decision(message, f"{EXPIRED}deadline ({reason})")
    return Decision(message, reason, until)
