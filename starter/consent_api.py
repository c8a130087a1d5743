"""Consent to marketing, per customer: grant, withdraw, and read the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance import consent
from activities.compliance.consent import Action, ConsentIn
from nudge.logging import get_logger
from nudge.store import Consent, Customer, consent_key, read_sessions

log = get_logger(__name__)
router = APIRouter(prefix="/v1/customers", tags=["consent"])


async def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.services.sessions
    return sessions


SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]


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


@router.get("/{customer_id}/consent", response_model=ConsentRecord)
async def get_consent(customer_id: str, sessions: SessionsDep) -> ConsentRecord:
    """The customer's current consent and every grant and withdrawal behind it, oldest first."""
    async with read_sessions(sessions)() as session:
        if await session.get(Customer, customer_id) is None:
            raise HTTPException(404, detail=f"unknown customer {customer_id!r}")
        current = await session.get(Consent, consent_key(customer_id))
        events = await consent.history(session, customer_id)
    return ConsentRecord(
        customer_id=customer_id,
        current=[ConsentPublic.model_validate(current, from_attributes=True)] if current else [],
        history=[ConsentEventPublic.model_validate(e, from_attributes=True) for e in events],
    )


@router.post("/{customer_id}/consent", status_code=201, response_model=ConsentPublic)
async def grant_consent(customer_id: str, body: ConsentIn, sessions: SessionsDep) -> Any:
    """Record that the customer agreed to marketing SMS: where (``source``), the wording they
    saw (``text``) and when (``at``, default now). Marketing sends need it."""
    return await _apply(sessions, customer_id, "granted", body)


@router.post("/{customer_id}/consent:withdraw", response_model=ConsentPublic)
async def withdraw_consent(customer_id: str, body: ConsentIn, sessions: SessionsDep) -> Any:
    """Record that the customer withdrew consent; marketing to them stops at once."""
    return await _apply(sessions, customer_id, "withdrawn", body)


async def _apply(
    sessions: async_sessionmaker[AsyncSession], customer_id: str, action: Action, body: ConsentIn
) -> ConsentPublic:
    async with sessions() as session:
        if await session.get(Customer, customer_id) is None:
            raise HTTPException(404, detail=f"unknown customer {customer_id!r}")
        current = await consent.record(session, customer_id, action, body)
        await session.commit()
    log.info(f"consent_{action}", customer_id=customer_id, source=body.source, actor=body.actor)
    return ConsentPublic.model_validate(current, from_attributes=True)
