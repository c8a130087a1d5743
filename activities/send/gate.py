"""The gate: the ordered checks a pending message passes before any route is called.

Each check looks at one thing and returns a ``Refusal`` (a reason, and a time when the message may
go instead of being blocked) or None. The first that refuses decides; the message's row records it.
The order matters, and is the product's promise (``tests/activities/test_gate_order.py``):

1. the template is approved in the registry;
2. the number is reachable (not invalid or carrier-blocked), for every category;
3. marketing: the number is not suppressed (STOP, complaints);
4. marketing: the customer consented, and has not withdrawn;
5. marketing: no pause holds the template, journey or signature (``nudge pause``, the
   complaint-rate breaker);
6. marketing: it is not quiet hours where the recipient is (deferred, not blocked);
7. the frequency caps have room (an atomic reservation in the ledger).

Routes (which are open, whose signature is approved, which are paused) are checked as the message
is dispatched (``dispatch.py``); a message the caps let through has taken its place under them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from activities.compliance.pauses import PauseCache, Scope, paused_reason
from nudge.caps import applicable
from nudge.models import Category, FrequencyCap, SendRequest
from nudge.quiet_hours import Window, next_allowed
from nudge.store import SUPPRESS_ALL, Message, Pause
from nudge.templates import ApprovalStatus, Template

from .ledger import Ledger, Standing
from .outcome import CONSENT_WITHDRAWN, NO_CONSENT, SUPPRESSED, TEMPLATE_NOT_APPROVED, UNREACHABLE


@dataclass(frozen=True, slots=True)
class Attempt:
    """What every check sees: the request, its pending row, the template variant and the recipient."""

    request: SendRequest
    message: Message
    template: Template
    standing: Standing
    marketing: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the message does not go now. With ``until``, it is deferred to then (its reason
    ``deferred:<reason>``); without, it is blocked. ``recorded`` is the row when the check wrote
    the refusal itself (the caps, inside their reservation's transaction)."""

    reason: str
    until: datetime | None = None
    recorded: Message | None = None


Check = Callable[[Attempt], Awaitable[Refusal | None]]


async def template_approved(attempt: Attempt) -> Refusal | None:
    status = attempt.template.status
    if status is not ApprovalStatus.APPROVED:
        return Refusal(f"{TEMPLATE_NOT_APPROVED}{status.value}")
    return None


async def reachable(attempt: Attempt) -> Refusal | None:
    """Nothing at all may go to a number that is invalid or blocked by its carrier."""
    suppression = attempt.standing.suppression
    if suppression is not None and suppression.scope == SUPPRESS_ALL:
        return Refusal(f"{UNREACHABLE}{suppression.reason}")
    return None


async def not_suppressed(attempt: Attempt) -> Refusal | None:
    if attempt.marketing and attempt.standing.suppression is not None:
        return Refusal(SUPPRESSED)
    return None


async def consented(attempt: Attempt) -> Refusal | None:
    if not attempt.marketing:
        return None
    consent = attempt.standing.consent
    if consent is None:
        return Refusal(NO_CONSENT)
    if not consent.granted:
        return Refusal(f"{CONSENT_WITHDRAWN}:{consent.source}")
    return None


async def find_pause(
    pauses: PauseCache, message: Message, *, signature: str | None, route: str | None = None
) -> Pause | None:
    """The pause, if any, that holds this marketing message (on ``route``, when given)."""
    return await pauses.find(
        (Scope.TEMPLATE, message.template),
        (Scope.JOURNEY, message.journey),
        (Scope.SIGNATURE, signature),
        (Scope.ROUTE, route),
    )


class Gate:
    """The checks in their order, with what the stateful ones read: pauses, quiet hours, caps."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        pauses: PauseCache,
        quiet_hours: Mapping[str, Window],
        caps: Sequence[FrequencyCap],
        clock: Callable[[], datetime],
    ) -> None:
        self._ledger = ledger
        self._pauses = pauses
        self._windows = dict(quiet_hours)
        self._caps = list(caps)
        self._clock = clock
        self.compliance: tuple[Check, ...] = (
            template_approved,
            reachable,
            not_suppressed,
            consented,
            self.not_paused,
        )
        """Checks 1-5: whether the message may go at all. A broadcast's batch runs these, then
        its own ``local_time`` wait, then the timing below, then the caps for the whole batch at
        once (``activities/broadcast/``)."""
        self.timing: tuple[Check, ...] = (self.outside_quiet_hours,)
        self.checks: tuple[Check, ...] = (*self.compliance, *self.timing, self.under_caps)

    async def refusal(self, attempt: Attempt) -> Refusal | None:
        """The first check's refusal, or None when the message may be dispatched."""
        for check in self.checks:
            refused = await check(attempt)
            if refused is not None:
                return refused
        return None

    async def not_paused(self, attempt: Attempt) -> Refusal | None:
        if not attempt.marketing:
            return None
        paused = await find_pause(self._pauses, attempt.message, signature=attempt.request.signature)
        return Refusal(paused_reason(paused)) if paused is not None else None

    async def outside_quiet_hours(self, attempt: Attempt) -> Refusal | None:
        message, customer = attempt.message, attempt.standing.customer
        if not attempt.marketing or not message.to:
            return None
        opens = next_allowed(
            self._clock(),
            message.to,
            profile_zone=customer.timezone if customer else None,
            windows=self._windows,
        )
        return Refusal("quiet_hours", until=opens) if opens is not None else None

    async def under_caps(self, attempt: Attempt) -> Refusal | None:
        message = attempt.message
        caps = applicable([*self._caps, *attempt.request.caps], Category(message.category))
        if not caps or message.cap_reserved_at is not None:
            return None
        capped = await self._ledger.reserve(message, caps, now=self._clock())
        return Refusal(capped.reason or "", recorded=capped) if capped is not None else None
