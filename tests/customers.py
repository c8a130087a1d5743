"""Customers in the store, as the gateway would have written them (profile and consent)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance import consent
from nudge.store import ConsentIn, Customer

SIGNUP_CONSENT = ConsentIn(source="signup_form", text="Offers by SMS. Reply STOP to opt out.")


async def add_customers(
    sessions: async_sessionmaker[AsyncSession], *customers: Customer, consented: bool = True
) -> None:
    """Store the customers; with ``consented``, each has agreed to marketing (as most tests need)."""
    async with sessions() as session:
        session.add_all(customers)
        await session.flush()
        if consented:
            for customer in customers:
                await consent.record(session, customer.id, "granted", SIGNUP_CONSENT)
        await session.commit()


def new_customer(customer_id: str, phone: str | None, **fields: Any) -> Customer:
    return Customer(id=customer_id, name=fields.pop("name", "Ada"), phone=phone, **fields)
