"""What a send ends as: the reasons a message is held, and the row mapped to a ``SendResult``."""

from __future__ import annotations

from nudge.caps import CAPPED
from nudge.models import MessageStatus, SendDecision, SendResult
from nudge.store import Message

UNREACHABLE = "unreachable:"
"""Reason prefix of a message to a number that is invalid or blocked by its carrier."""
NOT_SENT = "not_sent:"
"""Reason prefix of a pending message that an attempt knows did not reach the provider."""
DEFERRED = "deferred:"
SUPPRESSED = "suppressed"
NO_CONSENT = "no_consent"
CONSENT_WITHDRAWN = "consent_withdrawn"
TEMPLATE_NOT_APPROVED = "template_not_approved:"
SIGNATURE_NOT_APPROVED = "signature_not_approved:"
NO_PHONE = "no_phone"
NO_ROUTE = "no_route: "


def result(message: Message) -> SendResult:
    """The journey's view of the message row: sent, deferred, suppressed, capped or blocked."""
    status = MessageStatus(message.status)
    if status == MessageStatus.PENDING and message.defer_until is not None:
        decision = SendDecision.DEFERRED
    elif status == MessageStatus.BLOCKED and message.reason == SUPPRESSED:
        decision = SendDecision.SUPPRESSED
    elif status == MessageStatus.BLOCKED and (message.reason or "").startswith(CAPPED):
        decision = SendDecision.CAPPED
    elif status in (MessageStatus.BLOCKED, MessageStatus.FAILED, MessageStatus.PENDING):
        decision = SendDecision.BLOCKED
    else:
        decision = SendDecision.SENT
    return SendResult(
        message_id=message.id,
        decision=decision,
        reason=None if decision is SendDecision.SENT else (message.reason or message.status),
        provider=message.provider,
        provider_message_id=message.provider_message_id,
        segments=message.segments,
        # The route it went (or will go) out on; a refused message went nowhere.
        route=message.route if decision in (SendDecision.SENT, SendDecision.DEFERRED) else None,
        cost=message.cost,
        status=status,
        retry_at=message.defer_until if decision in (SendDecision.DEFERRED, SendDecision.CAPPED) else None,
    )
