"""Customer profiles: the upsert behind ``PUT /v1/customers/{id}`` and the batch, and the read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance import consent
from nudge.errors import InvalidInput, InvalidPhoneNumber, NotFound
from nudge.logging import get_logger
from nudge.phone import to_e164
from nudge.store import Customer, read_sessions
from nudge.store.customers import CustomerCreate

log = get_logger(__name__)


class UnknownCustomer(NotFound):
    """No customer has this id."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"unknown customer {customer_id!r}", kind="customer", name=customer_id)


class InvalidCustomers(InvalidInput):
    """Some customers of an upsert are invalid, so none was stored; ``errors`` says which and why
    (``index``, ``id``, ``error``)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid customers; nothing was stored")
        self.errors = errors


async def upsert_customers(
    sessions: async_sessionmaker[AsyncSession], customers: Sequence[CustomerCreate], *, default_region: str
) -> int:
    """Create or replace the customers, all or none, with phone numbers in E.164 (read in the
    customer's country, else ``default_region``). A consent given with a profile is recorded only
    for a customer with none on record. Returns how many were stored.

    Raises:
        InvalidCustomers: a phone number is invalid; nothing was stored.
    """
    errors = []
    normalised: list[CustomerCreate] = []
    for index, customer in enumerate(customers):
        if customer.phone:
            try:
                phone = to_e164(customer.phone, default_region=customer.country or default_region)
            except InvalidPhoneNumber as exc:
                errors.append({"index": index, "id": customer.id, "error": str(exc)})
                continue
            customer = customer.model_copy(update={"phone": phone})
        normalised.append(customer)
    if errors:
        raise InvalidCustomers(errors)
    async with sessions() as session:
        for customer in normalised:
            row = await session.get(Customer, customer.id) or Customer(id=customer.id)
            for field, value in customer.model_dump(exclude={"id", "consent"}).items():
                setattr(row, field, value)
            if row.erased_at is not None:
                # Sent again after an erasure (a CRM sync): a new profile, no longer an erased one.
                log.warning(
                    "erased_customer_profile_restored", customer_id=customer.id, erased_at=str(row.erased_at)
                )
                row.erased_at = None
            session.add(row)
            if customer.consent is not None:
                await session.flush()
                await consent.record(session, customer.id, "granted", customer.consent, first_only=True)
        await session.commit()
    return len(normalised)


async def read_customer(sessions: async_sessionmaker[AsyncSession], customer_id: str) -> Customer:
    """The customer's profile.

    Raises:
        UnknownCustomer: no customer has this id.
    """
    async with read_sessions(sessions)() as session:
        customer = await session.get(Customer, customer_id)
    if customer is None:
        raise UnknownCustomer(customer_id)
    return customer
