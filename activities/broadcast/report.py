"""A batch's report, read back from its rows after the sends: every recipient in exactly one
counter, and the batch failed (for its retry) while any of them is undecided."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.exceptions import ApplicationError

from activities.send.outcome import CONSENT_WITHDRAWN, DEFERRED, NO_CONSENT, SUPPRESSED
from nudge.broadcasts import WAITING, BatchReport, Outcome
from nudge.caps import CAPPED
from nudge.models import MessageStatus

from .gate import EXPIRED
from .table import Settled


def report(final: Sequence[Settled], *, throttled: float) -> BatchReport:
    """The batch's counters, and when its first waiting recipient is due.

    Raises:
        ApplicationError: ``BroadcastBatchIncomplete``, while a recipient is neither decided nor
            waiting (providers throttled or failed retryably, or their routes are all down): the
            activity comes back (its retry policy), and finds the rest decided.
    """
    batch = BatchReport(throttled=throttled)
    counts: dict[Outcome, int] = {}
    left = []
    for message in final:
        outcome = outcome_of(message)
        if outcome is None:
            left.append(message)
            continue
        counts[outcome] = counts.get(outcome, 0) + 1
        due = message.defer_until
        if outcome in WAITING and due is not None and (batch.next_due is None or due < batch.next_due):
            batch.next_due = due
    if left:
        raise ApplicationError(
            f"{len(left)} of {len(final)} recipients not sent yet (retrying): "
            + "; ".join(sorted({m.reason or "no answer" for m in left})[:3]),
            type="BroadcastBatchIncomplete",
        )
    batch.counts = counts
    return batch


def outcome_of(message: Settled) -> Outcome | None:
    """Which counter a recipient's row is in; None while it is undecided (pending, not waiting)."""
    status = MessageStatus(message.status)
    reason = message.reason or ""
    if status in (
        MessageStatus.SUBMITTED,
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
    ):
        return Outcome.SENT
    if status is MessageStatus.FAILED:
        return Outcome.FAILED
    if status is MessageStatus.BLOCKED:
        if reason.startswith(EXPIRED):
            return Outcome.EXPIRED
        if reason == SUPPRESSED:
            return Outcome.SUPPRESSED
        if reason == NO_CONSENT or reason.startswith(CONSENT_WITHDRAWN):
            return Outcome.NO_CONSENT
        return Outcome.BLOCKED
    if message.defer_until is not None and reason.startswith(DEFERRED):
        return Outcome.CAPPED if reason.startswith(f"{DEFERRED}{CAPPED}") else Outcome.DEFERRED
    return None
