"""A provider's permanent refusal of a send: the message failed, and what the refusal says about
the number (opted out, unreachable) is acted on: suppression, and the complaint-rate breaker."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance.complaints import ComplaintKind, ComplaintRecorder
from nudge.errors import PermanentProviderError
from nudge.logging import get_logger
from nudge.models import MessageStatus
from nudge.sinks import EventKind, StreamSink
from nudge.store import SUPPRESS_ALL, Message, MessageStatusChange, publish, suppress, utcnow

log = get_logger(__name__)


class Refusals:
    """Records permanent refusals on one store; ``complaints`` counts providers' opt-out codes, and
    each refusal is published to the stream's ``sinks`` (failed, and opted out when it says so)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        complaints: ComplaintRecorder,
        sinks: Sequence[StreamSink] = (),
    ) -> None:
        self._sessions = sessions
        self._complaints = complaints
        self._sinks = sinks

    async def record(self, message: Message, exc: PermanentProviderError) -> Message:
        """The provider refused the message for good: failed, and a number it names opted out or
        unreachable is suppressed (and an opt-out counts against the complaint-rate breaker)."""
        async with self._sessions() as session:
            row = await session.get(Message, message.id)
            assert row is not None
            already = row.status == MessageStatus.FAILED
            row.status = MessageStatus.FAILED
            row.provider = exc.provider
            row.error_code = exc.code
            row.reason = f"provider:{exc.code}"
            row.updated_at = utcnow()
            session.add(
                MessageStatusChange(
                    message_id=message.id,
                    provider=exc.provider,
                    status=MessageStatus.FAILED,
                    error_code=exc.code,
                    applied=True,
                    raw={"message": str(exc)},
                )
            )
            if (exc.opted_out or exc.unreachable) and row.to:
                await suppress(
                    session,
                    row.to,
                    reason=f"provider:{exc.code}",
                    source=exc.provider,
                    scope=SUPPRESS_ALL if exc.unreachable else None,
                )
            if not already:
                publish(session, self._sinks, EventKind.FAILED, message=row)
                if exc.opted_out:
                    publish(session, self._sinks, EventKind.OPTED_OUT, message=row, source="provider")
            await session.commit()
        if exc.opted_out:
            await self._count_complaint(row, exc.code)
        log.warning(
            "message_rejected",
            message_id=message.id,
            code=exc.code,
            provider=exc.provider,
            opted_out=exc.opted_out,
            unreachable=exc.unreachable,
        )
        return row

    async def _count_complaint(self, message: Message, code: str) -> None:
        """A provider's opt-out code counts against the breaker; counting it never fails the send
        (the message is recorded failed either way, so a retry would not count it again)."""
        try:
            await self._complaints.record(message, ComplaintKind.PROVIDER_CODE, code)
        except Exception:  # noqa: BLE001 - logged, and the send's result stands
            log.exception("complaint_not_recorded", message_id=message.id, code=code)
