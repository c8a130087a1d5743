"""The loop back: receipts and clicks update the store, then signal the journey that waits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.compliance import consent
from activities.compliance.complaints import ComplaintKind, ComplaintRecorder
from activities.compliance.consent import ConsentIn
from activities.receipts import attach_unmatched
from nudge.contracts import MESSAGE
from nudge.keywords import Keyword, classify_reply
from nudge.logging import get_logger
from nudge.models import MessageStatus, MessageUpdate
from nudge.phone import mask, phone_hash
from nudge.store import (
    SUPPRESS_ALL,
    Click,
    Consent,
    Customer,
    InboundMessage,
    Link,
    Message,
    MessageStatusChange,
    Suppression,
    consent_key,
    read_sessions,
    suppress,
    utcnow,
)

log = get_logger(__name__)
ANSWERS_HELP_ITSELF = frozenset({"twilio"})
"""Providers whose numbers answer HELP on their own (Twilio's default keyword handling): Nudge
answering too would send the customer two replies."""


class Feedback:
    def __init__(
        self,
        *,
        client: Client,
        sessions: async_sessionmaker[AsyncSession],
        on_opt_out: Callable[[str, str], Awaitable[None]] | None = None,
        on_help: Callable[[str, str], Awaitable[None]] | None = None,
        complaints: ComplaintRecorder | None = None,
    ) -> None:
        self._on_help = on_help
        """Called with (number, reply id) after a new HELP or INFO reply: sends the help answer."""
        self._on_opt_out = on_opt_out
        """Called with (number, reply id) after a new STOP-type reply: ends marketing journeys."""
        self._complaints = complaints
        """Counts opt-outs and complaint receipt codes against the complaint-rate breaker."""
        self._client = client
        self._sessions = sessions
        self._reads = read_sessions(sessions)

    async def receipt(
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
        # Find the message without a lock, then write only: on SQLite a transaction holds the
        # one write lock from its first statement, and receipts arrive as fast as sends go out.
        async with self._reads() as session:
            message = await self._match(session, provider, message_id, provider_message_id, to)
        applied = False
        async with self._sessions() as session:
            if message is not None:
                behind = [s.value for s in MessageStatus if s.rank < status.rank]
                moved = await session.exec(
                    update(Message)
                    .where(col(Message.id) == message.id, col(Message.status).in_(behind))
                    .values(
                        status=status.value,
                        error_code=func.coalesce(error_code, col(Message.error_code)),
                        updated_at=utcnow(),
                    )
                )
                applied = moved.rowcount == 1
            session.add(
                MessageStatusChange(
                    message_id=message.id if message else None,
                    provider=provider,
                    provider_message_id=provider_message_id,
                    status=status,
                    error_code=error_code,
                    applied=applied,
                    at=at or utcnow(),
                    raw=raw,
                )
            )
            await session.commit()
        notify = message is not None and applied and message.notify_receipt
        workflow_id = message.workflow_id if message else None
        if message is None and provider_message_id:
            # The send may have been recorded while we stored this (it could not see our row).
            message, applied = await self._attach_late(provider, provider_message_id)
            notify = message is not None and applied and message.notify_receipt
            workflow_id = message.workflow_id if message else None
        log.info(
            "receipt_stored",
            provider=provider,
            message_id=message.id if message else message_id,
            provider_message_id=provider_message_id,
            status=status.value,
            applied=applied,
            matched=message is not None,
        )
        if (
            message is not None
            and self._complaints is not None
            and self._complaints.counts(provider, error_code)
        ):
            await self._count_complaint(
                self._complaints.record(message, ComplaintKind.PROVIDER_CODE, error_code)
            )
        if notify and workflow_id and message is not None:
            await self._signal(
                workflow_id,
                MessageUpdate(message_id=message.id, kind="receipt", status=status, error_code=error_code),
            )
        return applied

    async def _attach_late(self, provider: str, provider_message_id: str) -> tuple[Message | None, bool]:
        async with self._reads() as session:
            rows = await session.exec(
                select(Message.id).where(
                    Message.provider_message_id == provider_message_id, Message.provider == provider
                )
            )
            found = rows.first()
        if found is None:
            return None, False
        async with self._sessions() as session:
            message = await session.get(Message, found)
            if message is None:
                return None, False
            moved = await attach_unmatched(session, message)
            await session.commit()
        return message, moved is not None

    @staticmethod
    async def _match(
        session: AsyncSession,
        provider: str,
        message_id: str | None,
        provider_message_id: str | None,
        to: str | None,
    ) -> Message | None:
        """Our message for a receipt, only ever among that provider's messages."""
        if message_id:
            message = await session.get(Message, message_id)
            if (
                message is not None
                and message.provider in (provider, None)
                and (to is None or message.to == to)
            ):
                return message
        if provider_message_id:
            query = select(Message).where(
                Message.provider_message_id == provider_message_id, Message.provider == provider
            )
            if to is not None:
                query = query.where(Message.to == to)
            return (await session.exec(query)).first()
        return None

    async def reply(
        self,
        *,
        provider: str,
        provider_ref: str,
        from_number: str,
        to: str | None,
        text: str,
        raw: dict[str, Any],
    ) -> tuple[bool, Keyword | None]:
        """Store an inbound reply once (redeliveries share ``provider_ref``) and apply it: a
        STOP-type reply suppresses the number and withdraws its customers' consent, START undoes
        that. The reply and its effects commit together. Returns (new, keyword).

        A redelivery applies the effects again when it is still the number's latest reply: an
        earlier delivery may have failed after the reply was stored, and the effects are
        idempotent. An older reply never undoes a newer one.
        """
        keyword = classify_reply(text)
        reply = InboundMessage(
            provider=provider,
            provider_ref=provider_ref,
            from_number=from_number,
            to=to,
            text=text,
            keyword=keyword,
            raw=raw,
        )
        new = True
        async with self._sessions() as session:
            session.add(reply)
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                new = False
                log.info("reply_duplicate", provider=provider, provider_ref=provider_ref)
                if not await self._is_latest(session, provider, provider_ref, from_number):
                    return False, keyword
            if keyword == "start":
                # START, UNSTOP, YES: the customer subscribes again (an invalid number stays out).
                existing = await session.get(Suppression, phone_hash(from_number))
                if existing is not None and existing.scope != SUPPRESS_ALL:
                    await session.delete(existing)
                await self._restore_consent(session, from_number, provider, text)
            if keyword == "stop":
                await suppress(session, from_number, reason=f"reply:{text.strip()[:20]}", source=provider)
                await self._withdraw_consent(session, from_number, provider, text)
            await session.commit()
        if not new:
            return False, keyword
        log.info("reply_received", provider=provider, from_number=mask(from_number), keyword=keyword)
        if keyword == "stop" and self._complaints is not None:
            await self._count_complaint(
                self._complaints.opt_out(from_number, reply_id=f"{provider}:{provider_ref}")
            )
        if keyword == "stop" and self._on_opt_out is not None:
            await self._on_opt_out(from_number, f"{provider}:{provider_ref}")
        if keyword == "help" and self._on_help is not None and provider not in ANSWERS_HELP_ITSELF:
            await self._on_help(from_number, f"{provider}:{provider_ref}")
        return True, keyword

    @staticmethod
    async def _is_latest(session: AsyncSession, provider: str, provider_ref: str, number: str) -> bool:
        """Whether the stored reply ``provider_ref`` is the newest from ``number``."""
        newest = await session.exec(
            select(InboundMessage.provider, InboundMessage.provider_ref)
            .where(InboundMessage.from_number == number)
            .order_by(col(InboundMessage.id).desc())
            .limit(1)
        )
        return newest.first() == (provider, provider_ref)

    @staticmethod
    async def _customers(session: AsyncSession, number: str) -> list[str]:
        return list((await session.exec(select(Customer.id).where(Customer.phone == number))).all())

    async def _withdraw_consent(self, session: AsyncSession, number: str, provider: str, text: str) -> None:
        """A STOP reply withdraws the marketing consent of every customer with that number (once:
        a repeated STOP adds nothing to the audit trail)."""
        withdrawal = ConsentIn(source=f"reply:{provider}", text=text.strip()[:200], actor="reply webhook")
        for customer_id in await self._customers(session, number):
            current = await session.get(Consent, consent_key(customer_id))
            if current is None or current.granted:
                await consent.record(session, customer_id, "withdrawn", withdrawal)

    async def _restore_consent(self, session: AsyncSession, number: str, provider: str, text: str) -> None:
        """START undoes what STOP did: a consent withdrawn by a reply is granted again. A consent
        never given, or withdrawn another way, stays as it is."""
        grant = ConsentIn(source=f"reply:{provider}", text=text.strip()[:200], actor="reply webhook")
        for customer_id in await self._customers(session, number):
            current = await session.get(Consent, consent_key(customer_id))
            if current is not None and not current.granted and current.source.startswith("reply:"):
                await consent.record(session, customer_id, "granted", grant)

    async def click(self, code: str, *, user_agent: str | None) -> str | None:
        """Record a click and return the target URL, or None for an unknown code."""
        async with self._sessions() as session:
            link = await session.get(Link, code)
            if link is None:
                return None
            message = await session.get(Message, link.message_id)
            first = message is not None and not message.clicked
            session.add(Click(code=code, message_id=link.message_id, user_agent=user_agent))
            if message is not None and first:
                message.clicked = True
                session.add(message)
            await session.commit()
            target, workflow_id = link.target_url, message.workflow_id if message else None
        log.info("link_clicked", code=code, message_id=link.message_id, first=first)
        if first and workflow_id:
            await self._signal(
                workflow_id, MessageUpdate(message_id=link.message_id, kind="click", url=target)
            )
        return target

    @staticmethod
    async def _count_complaint(counting: Awaitable[object]) -> None:
        """Counting a complaint never fails the receipt or the reply: the provider would only
        deliver it again."""
        try:
            await counting
        except Exception:  # noqa: BLE001 - logged; the receipt or reply is stored either way
            log.exception("complaint_not_recorded")

    async def _signal(self, workflow_id: str, update: MessageUpdate) -> None:
        try:
            await MESSAGE.send(self._client.get_workflow_handle(workflow_id), update)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            log.info("signal_skipped_journey_closed", workflow_id=workflow_id)
