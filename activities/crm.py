"""CRM reads. ``get_profile`` runs as a local activity: it is a fast read, no server round trip."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from nudge.models import Profile
from nudge.store import Customer, read_sessions


class CrmActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = read_sessions(sessions)

    @activity.defn(name="get_profile")
    async def get_profile(self, customer_id: str) -> Profile:
        """The customer's profile; an unknown customer reads as a bare profile (``exists=False``)."""
        async with self._sessions() as session:
            customer = await session.get(Customer, customer_id)
        if customer is None:
            return Profile(customer_id=customer_id, exists=False)
        return Profile(
            customer_id=customer.id,
            name=customer.name,
            phone=customer.phone,
            lifecycle_stage=customer.lifecycle_stage,
            country=customer.country,
            timezone=customer.timezone,
            attributes=customer.attributes or {},
        )
