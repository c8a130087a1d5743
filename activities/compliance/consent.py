"""Consent to marketing: the current state the gate reads, and the audit trail behind it.

Every grant and withdrawal is appended to ``consent_event`` and never changed; ``consent`` holds
the latest state per customer, channel and purpose, for the gate's one-row read.
"""

from __future__ import annotations

from typing import Literal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.store import Consent, ConsentEvent, ConsentIn, consent_key, utcnow

Action = Literal["granted", "withdrawn"]


async def record(
    session: AsyncSession, customer_id: str, action: Action, given: ConsentIn, *, first_only: bool = False
) -> Consent:
    """Apply a grant or withdrawal: the current state, plus one audit event. Not committed.

    ``first_only`` records it only when the customer has no consent on record yet: consent that
    comes with a profile (a re-imported CSV) must never undo a withdrawal, nor flood the trail.
    """
    granted = action == "granted"
    current = await session.get(Consent, consent_key(customer_id, given.channel, given.purpose))
    if first_only and current is not None:
        return current
    at = given.at or utcnow()
    if current is None:
        current = Consent(
            customer_id=customer_id,
            channel=given.channel,
            purpose=given.purpose,
            granted=granted,
            source=given.source,
        )
    current.granted = granted
    current.source = given.source
    current.text = given.text
    current.at = at
    current.updated_at = utcnow()
    session.add(current)
    session.add(
        ConsentEvent(
            customer_id=customer_id,
            channel=given.channel,
            purpose=given.purpose,
            action=action,
            source=given.source,
            text=given.text,
            actor=given.actor,
            at=at,
        )
    )
    return current


async def history(session: AsyncSession, customer_id: str) -> list[ConsentEvent]:
    rows = await session.exec(
        select(ConsentEvent).where(ConsentEvent.customer_id == customer_id).order_by(col(ConsentEvent.id))
    )
    return list(rows.all())
