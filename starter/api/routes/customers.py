"""Customer profiles: create or replace one or many, and read one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.settings import Settings
from nudge.store import Customer, Erasure, ErasureBase
from nudge.store.customers import CustomerPublic
from starter.api.auth import AUTH_ERRORS, NEEDS_ADMIN, NEEDS_EVENTS, NOT_FOUND, AdminCaller, Problem
from starter.api.deps import ServicesDep, SessionsDep, SettingsDep
from starter.api.errors import invalid
from starter.api.services import erasure
from starter.api.services.customers import (
    CustomerCreate,
    InvalidCustomers,
    UnknownCustomer,
    read_customer,
    upsert_customers,
)

router = APIRouter(tags=["customers"], responses=AUTH_ERRORS)


PersonQuery = Annotated[
    str | None, Query(min_length=1, max_length=100, description="The person acting, for the audit.")
]


class ErasurePublic(ErasureBase):
    id: int
    at: datetime


class Upserted(BaseModel):
    upserted: int
    """How many customers were stored (all of the request's, or none and a 422)."""


class CustomerBatch(BaseModel):
    customers: list[CustomerCreate] = Field(max_length=10_000)


@router.put("/v1/customers/{customer_id}", response_model=Upserted, dependencies=NEEDS_EVENTS)
async def put_customer(
    customer_id: str, body: CustomerCreate, sessions: SessionsDep, settings: SettingsDep
) -> dict[str, Any]:
    """Create or replace a customer profile. Phone numbers are stored in E.164."""
    if body.id != customer_id:
        raise invalid("customer id in the path and the body differ", loc=("body", "id"))
    return {"upserted": await _upsert(sessions, settings, [body], at=lambda _: ("body", "phone"))}


@router.post("/v1/customers:batch", response_model=Upserted, dependencies=NEEDS_EVENTS)
async def post_customers(
    batch: CustomerBatch, sessions: SessionsDep, settings: SettingsDep
) -> dict[str, Any]:
    """Create or replace many customers at once (used by ``nudge customers import``)."""
    return {
        "upserted": await _upsert(
            sessions, settings, batch.customers, at=lambda i: ("body", "customers", i, "phone")
        )
    }


@router.post(
    "/v1/customers/{customer_id}:forget", response_model=ErasurePublic, responses={404: {"model": Problem}}
)
async def forget_customer(
    customer_id: str, services: ServicesDep, caller: AdminCaller, by: PersonQuery = None
) -> Erasure:
    """Erase the customer: end their journeys, remove their name, phone, attributes and the
    numbers, bodies and texts of their messages and replies; keep the counts and the hashed
    suppression; record who asked. Idempotent."""
    try:
        return await erasure.forget_customer(
            services.sessions, services.client, customer_id, by=caller.acting_for(by)
        )
    except UnknownCustomer as exc:
        raise HTTPException(404, detail=str(exc)) from exc


@router.get(
    "/v1/customers/{customer_id}",
    response_model=CustomerPublic,
    responses=NOT_FOUND,
    dependencies=NEEDS_ADMIN,
)
async def get_customer(customer_id: str, sessions: SessionsDep) -> Customer:
    try:
        return await read_customer(sessions, customer_id)
    except UnknownCustomer as exc:
        raise HTTPException(404, detail=str(exc)) from exc


async def _upsert(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    customers: list[CustomerCreate],
    *,
    at: Callable[[int], tuple[str | int, ...]],
) -> int:
    """The upsert, its refusal as a 422 that names each invalid customer (``at``: where the
    customer with that index is in the body)."""
    try:
        return await upsert_customers(sessions, customers, default_region=settings.default_region)
    except InvalidCustomers as exc:
        raise RequestValidationError(
            [
                {"loc": at(e["index"]), "msg": f"{e['id']}: {e['error']}", "type": "phone_number"}
                for e in exc.errors
            ]
        ) from exc
