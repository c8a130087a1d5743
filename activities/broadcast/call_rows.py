"""A broadcast batch's rows around the providers' calls: the route claims before a call, the
acceptances after it (with the receipts that came first), and the notes that a call never reached
its provider."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import case, insert, update
from sqlmodel import col, select

from activities.early_receipts import attach_unmatched
from activities.providers.base import Submission
from activities.routing import Route
from nudge.models import MessageStatus
from nudge.sinks import EventKind
from nudge.store import Message, MessageStatusChange, publish, utcnow

from .table import CHANGES, PENDING, TABLE, RowStore, update_each


class CallRows(RowStore):
    """The writes of a batch around its provider calls."""

    async def claim(self, claims: Sequence[tuple[Message, Route, str, str]]) -> None:
        """Put messages on a route before the call (``(message, route, signature, batch_ref)``,
        the message priced for it): a retry that finds one pending asks this route about it."""
        if not claims:
            return
        async with self._sessions() as session:
            await update_each(
                session,
                [
                    {
                        "id": m.id,
                        "route": route.name,
                        "signature": signature,
                        "segments": m.segments,
                        "cost": m.cost,
                        "currency": m.currency,
                        "batch_ref": ref,
                    }
                    for m, route, signature, ref in claims
                ],
                reason=None,
                waiting=None,
                updated_at=utcnow(),
            )
            await session.commit()

    async def submitted(self, sent: Sequence[tuple[Message, Route, Submission]]) -> None:
        """Record the providers' acceptances, and apply receipts that came before them."""
        if not sent:
            return
        accepted = []
        for message, route, submission in sent:
            segments = submission.segments or message.segments
            accepted.append(
                {
                    "id": message.id,
                    "provider": submission.provider,
                    "route": route.name,
                    "provider_message_id": submission.provider_message_id,
                    "segments": segments,
                    "cost": round(segments * route.config.cost_per_segment, 6),
                }
            )
        async with self._sessions() as session:
            await update_each(
                session,
                accepted,
                reason=None,
                waiting=None,
                defer_until=None,
                updated_at=utcnow(),
                status=case((PENDING, MessageStatus.SUBMITTED.value), else_=TABLE.c.status),
            )
            at = utcnow()
            await session.exec(
                insert(CHANGES),
                params=[
                    {
                        "message_id": message.id,
                        "provider": submission.provider,
                        "provider_message_id": submission.provider_message_id,
                        "status": MessageStatus.SUBMITTED.value,
                        "error_code": None,
                        "applied": True,
                        "at": at,
                        "raw": {},
                    }
                    for message, _, submission in sent
                ],
            )
            if self._sinks:
                for message, route, submission in sent:
                    message.provider, message.route = submission.provider, route.name
                    message.provider_message_id = submission.provider_message_id
                    publish(session, self._sinks, EventKind.SENT, message=message, status="submitted")
            await session.commit()
        await self._early_receipts(sent)

    async def _early_receipts(self, sent: Sequence[tuple[Message, Route, Submission]]) -> None:
        """Receipts stored before the answer, matched by provider id. An id that several of
        these messages share (an Aliyun batch's BizId) cannot say which number a stored receipt
        is for: those wait for the receipt sweep, which asks by id and number."""
        ids: dict[tuple[str, str], list[str]] = {}
        for message, _, submission in sent:
            if submission.provider_message_id:
                ids.setdefault((submission.provider, submission.provider_message_id), []).append(message.id)
        unique = {key: found[0] for key, found in ids.items() if len(found) == 1}
        if not unique:
            return
        async with self._reads() as session:
            rows = await session.exec(
                select(MessageStatusChange.provider, MessageStatusChange.provider_message_id).where(
                    col(MessageStatusChange.message_id).is_(None),
                    col(MessageStatusChange.provider_message_id).in_([pmid for _, pmid in unique]),
                )
            )
            early = [unique[key] for key in {(p, i) for p, i in rows.all()} if key in unique]
        for message_id in early:
            async with self._sessions() as session:
                # Locked: a receipt batch that moves it meanwhile must not be overwritten.
                row = await session.get(Message, message_id, with_for_update=True)
                if row is not None:
                    await attach_unmatched(session, row, sinks=self._sinks)
                    await session.commit()

    async def mark(self, messages: Iterable[Message], reason: str) -> None:
        """Note on pending messages that their last attempt did not reach the provider."""
        ids = [m.id for m in messages]
        if not ids:
            return
        async with self._sessions() as session:
            await session.exec(
                update(TABLE)
                .where(TABLE.c.id.in_(ids), PENDING)
                .values(reason=reason, waiting=None, updated_at=utcnow())
            )
            await session.commit()
