"""The complaint-rate breaker: attribute complaints to messages, and pause a scope whose rate is
too high.

A complaint is one of:
- an opt-out (a STOP-type reply), attributed to the latest marketing message sent to the number
  within ``complaint_attribution`` (72 h);
- a provider's opt-out or blacklist code when sending (``PermanentProviderError.opted_out``);
- a receipt carrying one of ``complaint_codes`` (Twilio 30007, carrier filtering...).

Each counts once per message and kind. After a new complaint, each scope of its message (template,
signature, journey, route) is evaluated over the sliding ``complaint_window`` (24 h), or since the
scope was last resumed if that is later: rate = messages complained about / marketing messages
sent. When at least ``complaint_min_volume`` were sent and the rate is above
``complaint_threshold``, the scope pauses (``pauses.py``), an error ``sends_paused`` is logged
with ``alert=true``, and the alert is posted to the webhook.

Only marketing counts, as only marketing is held by a pause: a payment confirmation is never
stopped by other messages' complaints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import distinct, func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance.alerts import AlertWebhook
from activities.compliance.pauses import AlreadyPaused, Figures, Scope, Source, last_resumed, pause
from nudge.logging import get_logger
from nudge.models import Category, MessageStatus
from nudge.phone import mask
from nudge.settings import Settings
from nudge.store import Complaint, Customer, Message, Pause, read_sessions

log = get_logger(__name__)
BREAKER = "complaint-breaker"
"""Who opens an automatic pause, in ``created_by`` and the audit."""
HANDED_OVER = (
    MessageStatus.SUBMITTED,
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.UNDELIVERED,
    MessageStatus.FAILED,
)
"""Statuses of a message a provider took or refused: what "sent" counts (with a provider set)."""


class ComplaintKind(StrEnum):
    OPT_OUT = "opt_out"
    PROVIDER_CODE = "provider_code"


@dataclass(frozen=True, slots=True)
class ComplaintPolicy:
    """The breaker's settings (``NUDGE_COMPLAINT_*``)."""

    window: timedelta = timedelta(hours=24)
    attribution: timedelta = timedelta(hours=72)
    threshold: float = 0.03
    min_volume: int = 100
    receipt_codes: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: {"twilio": frozenset({"30004", "30007"})}
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> ComplaintPolicy:
        return cls(
            window=settings.complaint_window,
            attribution=settings.complaint_attribution,
            threshold=settings.complaint_threshold,
            min_volume=settings.complaint_min_volume,
            receipt_codes={p: frozenset(codes) for p, codes in settings.complaint_codes.items()},
        )


def scopes_of(message: Message) -> list[tuple[Scope, str]]:
    """The scopes a message counts in (a signature or route it never got is left out)."""
    values = {
        Scope.TEMPLATE: message.template,
        Scope.SIGNATURE: message.signature,
        Scope.JOURNEY: message.journey,
        Scope.ROUTE: message.route,
    }
    return [(scope, value) for scope, value in values.items() if value]


class ComplaintRecorder:
    """Records complaints and opens the breaker; shared by the gateway (replies, receipts) and the
    worker (send-time opt-out codes)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        policy: ComplaintPolicy | None = None,
        alerts: AlertWebhook | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._reads = read_sessions(sessions)
        self.policy = policy or ComplaintPolicy()
        self._alerts = alerts
        self._clock = clock

    def counts(self, provider: str, code: str | None) -> bool:
        """Is this receipt error code a complaint (``NUDGE_COMPLAINT_CODES``)?"""
        return code is not None and code in self.policy.receipt_codes.get(provider, frozenset())

    async def opt_out(self, number: str, *, reply_id: str) -> list[Pause]:
        """A STOP-type reply from ``number``: a complaint of the latest marketing message it got
        within the attribution time (none: nothing to count). Returns the pauses it opened."""
        since = self._clock() - self.policy.attribution
        async with self._reads() as session:
            # Through the customer's indexed phone: ``message.to`` has no index of its own.
            customers = select(Customer.id).where(Customer.phone == number)
            query = (
                select(Message)
                .where(
                    col(Message.customer_id).in_(customers),
                    Message.to == number,
                    Message.category == Category.MARKETING.value,
                    col(Message.provider).is_not(None),
                    col(Message.status).in_([s.value for s in HANDED_OVER]),
                    col(Message.created_at) >= since,
                )
                .order_by(col(Message.created_at).desc())
                .limit(1)
            )
            message = (await session.exec(query)).first()
        if message is None:
            log.info("opt_out_unattributed", from_number=mask(number), reply=reply_id)
            return []
        return await self.record(message, ComplaintKind.OPT_OUT, reply_id)

    async def provider_code(self, message_id: str, code: str) -> list[Pause]:
        """A provider's opt-out or complaint code for one of our messages."""
        async with self._reads() as session:
            message = await session.get(Message, message_id)
        if message is None:
            return []
        return await self.record(message, ComplaintKind.PROVIDER_CODE, code)

    async def record(self, message: Message, kind: ComplaintKind, code: str | None) -> list[Pause]:
        """Count the complaint once per (message, kind), then evaluate the message's scopes."""
        if message.category != Category.MARKETING.value:
            return []
        async with self._sessions() as session:
            session.add(
                Complaint(
                    message_id=message.id,
                    kind=kind.value,
                    code=code,
                    template=message.template,
                    signature=message.signature,
                    journey=message.journey,
                    route=message.route,
                    at=self._clock(),
                )
            )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                log.info("complaint_duplicate", message_id=message.id, kind=kind.value)
                return []
        log.info("complaint_recorded", message_id=message.id, kind=kind.value, code=code)
        return await self.evaluate(message)

    async def evaluate(self, message: Message) -> list[Pause]:
        """Pause each of the message's scopes whose rate is over the threshold."""
        opened = []
        for scope, value in scopes_of(message):
            async with self._reads() as session:
                if await session.get(Pause, (scope.value, value)) is not None:
                    continue
                since = self._clock() - self.policy.window
                resumed = await last_resumed(session, scope, value)
                figures = await _figures(session, scope, value, max(since, resumed or since))
            if figures.sent < self.policy.min_volume or figures.rate <= self.policy.threshold:
                continue
            try:
                opened.append(await self._open(scope, value, figures))
            except AlreadyPaused:
                continue  # the other process (gateway or worker) opened it a moment ago
        return opened

    async def _open(self, scope: Scope, value: str, figures: Figures) -> Pause:
        hours = self.policy.window.total_seconds() / 3600
        reason = (
            f"complaint rate {figures.rate:.1%} over {hours:g} h ({figures.complaints} complaints / "
            f"{figures.sent} sent) is above {self.policy.threshold:.1%}"
        )
        row = await pause(
            self._sessions,
            scope=scope,
            value=value,
            reason=reason,
            source=Source.AUTO,
            by=BREAKER,
            figures=figures,
        )
        alert = self.alert(row)
        log.error("sends_paused", **{k: v for k, v in alert.items() if k != "alert"}, alert=True)
        if self._alerts is not None:
            self._alerts.post(alert)
        return row

    def alert(self, row: Pause) -> dict[str, Any]:
        """The JSON posted to the alert webhook for an automatic pause."""
        return {
            "alert": "sends_paused",
            "scope": row.scope,
            "value": row.value,
            "source": row.source,
            "reason": row.reason,
            "complaints": row.complaints,
            "sent": row.sent,
            "rate": row.rate,
            "threshold": self.policy.threshold,
            "window_s": self.policy.window.total_seconds(),
            "min_volume": self.policy.min_volume,
            "paused_at": row.created_at.isoformat(),
            "resume": f"nudge resume --{row.scope} {row.value}",
        }


async def _figures(session: AsyncSession, scope: Scope, value: str, since: datetime) -> Figures:
    """Marketing messages handed to a provider since ``since`` in the scope, and how many of those
    same messages drew a complaint: a late STOP about an older message (before the window, or
    before a resume) must not count against the messages sent since."""
    message_scope = getattr(Message, scope.value)
    in_scope = (
        message_scope == value,
        col(Message.created_at) >= since,
        Message.category == Category.MARKETING.value,
        col(Message.provider).is_not(None),
        col(Message.status).in_([s.value for s in HANDED_OVER]),
    )
    complaints = await session.exec(
        select(func.count(distinct(col(Complaint.message_id))))
        .select_from(Complaint)
        .join(Message, col(Message.id) == col(Complaint.message_id))
        .where(*in_scope)
    )
    sent = await session.exec(select(func.count()).select_from(Message).where(*in_scope))
    return Figures(complaints=complaints.one(), sent=sent.one())
