"""Delivery receipts: the status machine (a message only moves forward); the receipts that arrive
before their send is recorded ("early" receipts) are attached by ``activities/early_receipts.py``.

``Receipts`` stores every receipt, applies one when it moves the message forward, then signals the
journey that waits for it; the gateway's webhooks and the worker's receipt sweep both use it. The
receipts of one request, and of the requests that arrive while a transaction runs
(``GroupCommit``), are stored in one transaction with a few set-based statements: one read of
their messages, one UPDATE of the forward moves, one INSERT of every receipt. A receipt used to
cost its own two transactions and a dozen statements, about 6 ms; a broadcast's receipts come
back as fast as it sends.

A provider may report a message before Nudge has stored the provider's id for it (Tencent's
SerialNo, Twilio's SID): the receipt is then stored unmatched. Both sides look again after they
commit, so whichever commits second attaches it, on SQLite and under PostgreSQL's READ COMMITTED.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from activities.compliance.complaints import ComplaintRecorder
from activities.early_receipts import RECEIPT_KINDS, attach_unmatched, publish_receipt
from activities.feedback import GroupCommit, count_complaint, finish_anyway, signal_journey, signalled
from activities.receipt_batch import Matched, Receipt, forward_moves, match_receipts, write_receipts
from nudge.logging import get_logger
from nudge.metrics import RECEIPTS
from nudge.models import MessageStatus, MessageUpdate
from nudge.sinks import StreamSink
from nudge.store import Message, read_sessions, utcnow

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Stored:
    """What became of one receipt, once committed."""

    applied: bool
    message_id: str | None = None
    """The message it was matched to; None when kept unmatched."""
    workflow_id: str | None = None
    """The journey to signal: it applied (or repeats the final status the message has: ``_signals``),
    the send asked for it, and it is not a broadcast's."""


class Receipts:
    def __init__(
        self,
        *,
        client: Client,
        sessions: async_sessionmaker[AsyncSession],
        complaints: ComplaintRecorder | None = None,
        sinks: Sequence[StreamSink] = (),
        batch_limit: int = 1000,
    ) -> None:
        """
        Args:
            client: Signals the journeys that wait for their receipts.
            sessions: The store.
            complaints: Counts complaint receipt codes against the complaint-rate breaker.
            sinks: The stream's sinks: a receipt that moves a message to a final status is published.
            batch_limit: At most this many receipts in one transaction.
        """
        self._complaints = complaints
        self._sinks = sinks
        self._client = client
        self._sessions = sessions
        self._reads = read_sessions(sessions)
        self._batches = GroupCommit(self._store, limit=batch_limit)

    async def receive(
        self,
        *,
        provider: str,
        message_id: str | None,
        provider_message_id: str | None,
        status: MessageStatus,
        error_code: str | None,
        at: datetime | None,
        raw: dict[str, Any],
        to: str | None = None,
    ) -> bool:
        """Store the receipt; apply it if it moves the message forward. Returns True if applied.

        Every receipt is kept, even a duplicate, or one for a message whose send is not recorded
        yet (``send_message`` applies it when it records the provider's answer). A message is
        found by our id, or by the provider's id and the number (an Aliyun batch shares one id).
        """
        receipt = Receipt(provider, message_id, provider_message_id, status, error_code, at, raw, to)
        return (await self.receive_many([receipt]))[0]

    async def receive_many(self, receipts: Sequence[Receipt]) -> list[bool]:
        """Store a request's receipts as ``receive`` does each, in one transaction (shared with
        the requests that arrive meanwhile), in order. Returns whether each was applied.

        A request cancelled meanwhile (its client hung up) still ends: its receipts are stored,
        and the journeys signalled: the provider, seeing no answer, would send them again, and a
        journey signalled only then would have waited for nothing meanwhile."""
        if not receipts:
            return []
        return await finish_anyway(self._receive_many(receipts))

    async def _receive_many(self, receipts: Sequence[Receipt]) -> list[bool]:
        stored = await self._batches.submit(receipts)
        counts = Counter(
            (r.provider, r.status.value, str(s.applied).lower())
            for r, s in zip(receipts, stored, strict=True)
        )
        for labels, count in counts.items():
            RECEIPTS.labels(*labels).inc(count)
        for receipt, outcome in zip(receipts, stored, strict=True):
            if (
                outcome.message_id is not None
                and self._complaints is not None
                and self._complaints.counts(receipt.provider, receipt.error_code)
            ):
                code = receipt.error_code or ""
                await count_complaint(self._complaints.provider_code(outcome.message_id, code))
        await asyncio.gather(
            *(
                signal_journey(
                    self._client,
                    outcome.workflow_id,
                    MessageUpdate(
                        message_id=outcome.message_id or "",
                        kind="receipt",
                        status=receipt.status,
                        error_code=receipt.error_code,
                    ),
                )
                for receipt, outcome in zip(receipts, stored, strict=True)
                if outcome.workflow_id is not None
            )
        )
        return [outcome.applied for outcome in stored]

    async def _store(self, receipts: list[Receipt]) -> list[Stored]:
        """One transaction for a batch: its messages read (and locked, on PostgreSQL), the forward
        moves applied, every receipt inserted, the final ones published; then a second look for
        the unmatched ones whose send was recorded meanwhile."""
        now = utcnow()
        async with self._sessions() as session:
            matched = await self._match(session, receipts)
            applied = forward_moves(receipts, matched)
            # Core statements on the session's connection: no ORM object per receipt.
            await write_receipts(await session.connection(), receipts, matched, applied, now=now)
            await self._publish(session, receipts, matched, applied)
            await session.commit()
        stored = [
            Stored(moved, message.id, message.workflow_id if _signals(receipt, message, moved) else None)
            if message is not None
            else Stored(False)
            for receipt, message, moved in zip(receipts, matched, applied, strict=True)
        ]
        late = [i for i, message in enumerate(matched) if message is None and receipts[i].provider_message_id]
        if late:
            try:
                await self._attach_late(receipts, late, stored)
            except Exception:  # noqa: BLE001 - the batch is committed: retrying it would store it twice
                # The receipts are stored, unmatched; the send's own record or the receipt sweep
                # attaches them later.
                log.exception("receipt_late_attach_failed", receipts=len(late))
        _log_stored(receipts, stored)
        return stored

    async def _publish(
        self,
        session: AsyncSession,
        receipts: Sequence[Receipt],
        matched: Sequence[Matched | None],
        applied: Sequence[bool],
    ) -> None:
        """Publish the final statuses the batch moved messages to (the stream wants whole messages:
        read only when a sink takes receipts)."""
        kinds = {kind for kind in RECEIPT_KINDS.values() if any(sink.wants(kind) for sink in self._sinks)}
        final = [
            (receipt, message.id)
            for receipt, message, moved in zip(receipts, matched, applied, strict=True)
            if moved and message is not None and RECEIPT_KINDS.get(receipt.status) in kinds
        ]
        if not final:
            return
        rows = await session.exec(select(Message).where(col(Message.id).in_({id_ for _, id_ in final})))
        messages = {message.id: message for message in rows.all()}
        for receipt, message_id in final:
            publish_receipt(
                session,
                self._sinks,
                messages[message_id],
                receipt.status,
                error_code=receipt.error_code,
                at=receipt.at,
            )

    async def _attach_late(self, receipts: Sequence[Receipt], late: list[int], stored: list[Stored]) -> None:
        """The sends recorded while the batch stored their receipts unmatched (they could not see
        them): attach them now, as ``record_submission`` would have."""
        keys = {(receipts[i].provider, receipts[i].provider_message_id) for i in late}
        async with self._reads() as session:
            rows = await session.exec(
                select(Message.id, Message.provider, Message.provider_message_id)
                .where(col(Message.provider_message_id).in_({pid for _, pid in keys}))
                .order_by(col(Message.id))
            )
            sharing: dict[tuple[str | None, str | None], list[str]] = {}
            for message_id, provider, provider_message_id in rows.all():
                if (provider, provider_message_id) in keys:
                    sharing.setdefault((provider, provider_message_id), []).append(message_id)
        # An id several messages share (an Aliyun batch's BizId) cannot say which number a stored
        # receipt is for: those wait for the receipt sweep, which asks by id and number.
        found = {key: ids[0] for key, ids in sharing.items() if len(ids) == 1}
        if not found:
            return
        attached: dict[tuple[str | None, str | None], tuple[Message, MessageStatus | None]] = {}
        async with self._sessions() as session:
            # Locked, in id order as the receipt batches lock: one that moves a message meanwhile
            # must not be overwritten.
            for key, message_id in sorted(found.items(), key=lambda item: item[1]):
                if (message := await session.get(Message, message_id, with_for_update=True)) is not None:
                    attached[key] = (message, await attach_unmatched(session, message, sinks=self._sinks))
            await session.commit()
        for index in late:
            receipt = receipts[index]
            if (entry := attached.get((receipt.provider, receipt.provider_message_id))) is None:
                continue
            message, moved = entry
            # The receipt whose status the message took is the one that applied (the first of them).
            applied = moved is receipt.status and not any(
                stored[i].applied
                for i in late
                if i < index
                and (receipts[i].provider, receipts[i].provider_message_id)
                == (receipt.provider, receipt.provider_message_id)
            )
            workflow_id = message.workflow_id if applied and _notified(message) else None
            stored[index] = Stored(applied, message.id, workflow_id)

    @staticmethod
    async def _match(session: AsyncSession, receipts: Sequence[Receipt]) -> list[Matched | None]:
        return await match_receipts(session, receipts)


def _log_stored(receipts: Sequence[Receipt], stored: Sequence[Stored]) -> None:
    """One line per transaction (a line per receipt cost more than storing it), and each receipt
    at debug level."""
    if logging.getLogger(__name__).isEnabledFor(logging.DEBUG):
        for receipt, outcome in zip(receipts, stored, strict=True):
            log.debug(
                "receipt_stored",
                provider=receipt.provider,
                message_id=outcome.message_id or receipt.message_id,
                provider_message_id=receipt.provider_message_id,
                status=receipt.status.value,
                applied=outcome.applied,
                matched=outcome.message_id is not None,
            )
    log.info(
        "receipts_stored",
        providers=sorted({receipt.provider for receipt in receipts}),
        receipts=len(receipts),
        applied=sum(outcome.applied for outcome in stored),
        unmatched=sum(outcome.message_id is None for outcome in stored),
    )


def _signals(receipt: Receipt, message: Matched, moved: bool) -> bool:
    """Does the receipt go to the message's journey: it moved the message, or it repeats the
    final status the message had (the provider sending it again), for a journey that waits?

    A repeated final status is signalled again: its first delivery may have been stored but never
    signalled (Temporal out of reach, answered 500), and a journey takes a status it has as a
    no-op. Only a final one: a journey waits for nothing else, and the intermediate statuses a
    provider repeats in its own words (Twilio's ``queued`` and ``accepted``, both ``submitted``)
    would each cost the journey a signal.
    """
    repeated = receipt.status.terminal and receipt.status is MessageStatus(message.status)
    return (moved or repeated) and _notified(message)


def _notified(message: Matched | Message) -> bool:
    """Whether the journey that sent the message waits for its receipt."""
    return bool(message.notify_receipt) and signalled(message.workflow_id, message.broadcast_id)
