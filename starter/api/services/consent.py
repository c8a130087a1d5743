"""A customer's marketing consent over HTTP: its current state with its audit trail, and the
grants and withdrawals that change it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance import consent
from activities.compliance.consent import Action
from nudge.logging import get_logger
from nudge.store import Consent, ConsentEvent, ConsentIn, Customer, consent_key, read_sessions
from starter.api.services.customers import UnknownCustomer

log = get_logger(__name__)


async def read_consent(
    sessions: async_sessionmaker[AsyncSession], customer_id: str
) -> tuple[Consent | None, list[ConsentEvent]]:
    """The customer's current consent (None when never given) and every grant and withdrawal
    behind it, oldest first.

    Raises:
        UnknownCustomer: no customer has this id.
    """
    async with read_sessions(sessions)() as session:
        if await session.get(Customer, customer_id) is None:
            raise UnknownCustomer(customer_id)
        current = await session.get(Consent, consent_key(customer_id))
        events = await consent.history(session, customer_id)
    return current, events


async def change_consent(
    sessions: async_sessionmaker[AsyncSession], customer_id: str, action: Action, given: ConsentIn
) -> Consent:
    """Record a grant or a withdrawal, with its audit event; returns the current consent.

    Raises:
        UnknownCustomer: no customer has this id.
    """
    async with sessions() as session:
        if await session.get(Customer, customer_id) is None:
            raise UnknownCustomer(customer_id)
        current = await consent.record(session, customer_id, action, given)
        await session.commit()
    log.info(f"consent_{action}", customer_id=customer_id, source=given.source, actor=given.actor)
    return current
