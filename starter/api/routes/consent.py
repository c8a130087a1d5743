"""Consent to marketing, per customer: grant, withdraw, and read the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from nudge.store import ConsentIn
from starter.api.auth import AUTH_ERRORS, NEEDS_ADMIN, NOT_FOUND, AdminCaller
from starter.api.deps import SessionsDep
from starter.api.services.consent import change_consent, read_consent
from starter.api.services.customers import UnknownCustomer

router = APIRouter(prefix="/v1/customers", tags=["consent"], responses={**AUTH_ERRORS, **NOT_FOUND})


class ConsentPublic(BaseModel):
    customer_id: str
    channel: str
    purpose: str
    granted: bool
    source: str
    text: str
    at: datetime


class ConsentEventPublic(BaseModel):
    action: str
    channel: str
    purpose: str
    source: str
    text: str
    actor: str | None
    at: datetime
    recorded_at: datetime


class ConsentRecord(BaseModel):
    customer_id: str
    current: list[ConsentPublic]
    history: list[ConsentEventPublic]


@router.get("/{customer_id}/consent", response_model=ConsentRecord, dependencies=NEEDS_ADMIN)
async def get_consent(customer_id: str, sessions: SessionsDep) -> ConsentRecord:
    """The customer's current consent and every grant and withdrawal behind it, oldest first."""
    try:
        current, events = await read_consent(sessions, customer_id)
    except UnknownCustomer as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    return ConsentRecord(
        customer_id=customer_id,
        current=[ConsentPublic.model_validate(current, from_attributes=True)] if current else [],
        history=[ConsentEventPublic.model_validate(e, from_attributes=True) for e in events],
    )


@router.post("/{customer_id}/consent", status_code=201, response_model=ConsentPublic)
async def grant_consent(customer_id: str, body: ConsentIn, sessions: SessionsDep, caller: AdminCaller) -> Any:
    """Record that the customer agreed to marketing SMS: where (``source``), the wording they
    saw (``text``) and when (``at``, default now). Marketing sends need it."""
    try:
        current = await change_consent(
            sessions, customer_id, "granted", body.model_copy(update={"actor": caller.acting_for(body.actor)})
        )
    except UnknownCustomer as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    return ConsentPublic.model_validate(current, from_attributes=True)


@router.post("/{customer_id}/consent:withdraw", response_model=ConsentPublic)
async def withdraw_consent(
    customer_id: str, body: ConsentIn, sessions: SessionsDep, caller: AdminCaller
) -> Any:
    """Record that the customer withdrew consent; marketing to them stops at once."""
    try:
        current = await change_consent(
            sessions,
            customer_id,
            "withdrawn",
            body.model_copy(update={"actor": caller.acting_for(body.actor)}),
        )
    except UnknownCustomer as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    return ConsentPublic.model_validate(current, from_attributes=True)
