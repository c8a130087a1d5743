"""Customers' replies: stored once, STOP and START applied to suppression and consent, and the
journeys told (an opt-out ends marketing journeys; HELP starts the help answer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance import consent
from activities.compliance.complaints import ComplaintRecorder
from activities.feedback import count_complaint
from nudge.contracts import OPTED_OUT
from nudge.keywords import Keyword, classify_reply
from nudge.logging import get_logger
from nudge.metrics import REPLIES
from nudge.models import Event
from nudge.phone import mask, phone_hash
from nudge.sinks import EventKind, StreamSink
from nudge.store import (
    SUPPRESS_ALL,
    Consent,
    ConsentIn,
    Customer,
    InboundMessage,
    Suppression,
    consent_key,
    publish,
    read_sessions,
    suppress,
)
from starter.api.services.intake import EventRouter

log = get_logger(__name__)
ANSWERS_HELP_ITSELF = frozenset({"twilio"})
"""Providers whose numbers answer HELP on their own (Twilio's default keyword handling): Nudge
answering too would send the customer two replies."""


class Replies:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        intake: EventRouter | None = None,
        complaints: ComplaintRecorder | None = None,
        sinks: Sequence[StreamSink] = (),
    ) -> None:
        self._sinks = sinks
        """The stream's sinks: a new reply is published (and a STOP as an opt-out)."""
        self._intake = intake
        """Routes the ``opted_out`` and ``help_requested`` events a new reply raises; without it,
        a reply changes the store only."""
        self._complaints = complaints
        """Counts opt-outs against the complaint-rate breaker."""
        self._sessions = sessions
        self._reads = read_sessions(sessions)

    async def receive(
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
                # A fixed reason: the suppression outlives the customer (erasure), so no free text in it.
                await suppress(session, from_number, reason="reply:stop", source=provider)
                await self._withdraw_consent(session, from_number, provider, text)
            if new and self._sinks:
                await self._publish(session, reply)
            await session.commit()
        if not new:
            return False, keyword
        log.info("reply_received", provider=provider, from_number=mask(from_number), keyword=keyword)
        REPLIES.labels(provider, keyword or "").inc()
        reply_id = f"{provider}:{provider_ref}"
        if keyword == "stop" and self._complaints is not None:
            await count_complaint(self._complaints.opt_out(from_number, reply_id=reply_id))
        if keyword == "stop" and self._intake is not None:
            await self._opted_out(self._intake, from_number, reply_id)
        if keyword == "help" and self._intake is not None and provider not in ANSWERS_HELP_ITSELF:
            await self._help_requested(self._intake, from_number, reply_id)
        return True, keyword

    async def _publish(self, session: AsyncSession, reply: InboundMessage) -> None:
        """A new reply, once per customer with the number (or once, for nobody's), and a STOP as an
        opt-out too; the number and the text only to sinks that take personal data."""
        customers: list[str | None] = [*await self._customers(session, reply.from_number)] or [None]
        for customer_id in customers:
            about: dict[str, Any] = {
                "customer_id": customer_id,
                "provider": reply.provider,
                "keyword": reply.keyword,
            }
            pii = {"from": reply.from_number, "text": reply.text}
            publish(session, self._sinks, EventKind.REPLIED, at=reply.received_at, pii=pii, **about)
            if reply.keyword == "stop":
                at, number = reply.received_at, {"from": reply.from_number}
                publish(session, self._sinks, EventKind.OPTED_OUT, at=at, pii=number, source="reply", **about)

    async def _opted_out(self, intake: EventRouter, number: str, reply_id: str) -> None:
        """A STOP-type reply: every customer with this number leaves their marketing journeys
        (the ``opted_out`` event, which marketing journeys listen for)."""
        async with self._reads() as session:
            customers = await self._customers(session, number)
        for customer_id in customers:
            await intake.route(
                Event(
                    event_id=f"opted_out:{reply_id}:{customer_id}",
                    customer_id=customer_id,
                    name=OPTED_OUT,
                    properties={"reply": reply_id},
                )
            )

    async def _help_requested(self, intake: EventRouter, number: str, reply_id: str) -> None:
        """A HELP or INFO reply: the ``help_requested`` event starts the HelpReply journey of the
        number's customer (one answer per number, even when several customers share it)."""
        async with self._reads() as session:
            query = select(Customer.id).where(Customer.phone == number).order_by(col(Customer.created_at))
            customer_id = (await session.exec(query)).first()
        if customer_id is None:
            log.info("help_reply_skipped_unknown_number", reply=reply_id)
            return
        await intake.route(
            Event(
                event_id=f"help_requested:{reply_id}",
                customer_id=customer_id,
                name="help_requested",
                properties={"reply": reply_id},
            )
        )

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
