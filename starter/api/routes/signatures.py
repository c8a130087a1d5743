"""Signatures (and senders) in the registry, and their review.

GET  /v1/signatures, GET|PUT /v1/signatures/{name}
POST /v1/signatures/{name}:submit|:approve
POST /v1/signatures/{name}:reject               {"reason": "..."}
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel

from nudge.store import SmsSignature
from nudge.templates import ApprovalStatus
from starter.api.auth import AUTH_ERRORS, NEEDS_READ, NOT_FOUND, STEP_ERRORS, AdminCaller
from starter.api.deps import RegistryDep
from starter.api.routes.review import Rejection, registry_answers

router = APIRouter(tags=["registry"], responses={**AUTH_ERRORS, **NOT_FOUND})


class SignaturePublic(BaseModel):
    name: str
    status: ApprovalStatus
    reason: str | None
    created_at: datetime
    updated_at: datetime
    approved_at: datetime | None
    changed_by: str | None = None

    @classmethod
    def of(cls, row: SmsSignature) -> SignaturePublic:
        return cls(**row.model_dump(exclude={"status"}), status=ApprovalStatus(row.status))


class SignaturePut(BaseModel):
    signature: SignaturePublic
    created: bool


@router.get("/v1/signatures", response_model=list[SignaturePublic], dependencies=NEEDS_READ)
async def list_signatures(registry: RegistryDep) -> list[SignaturePublic]:
    """Every signature and sender, with its review state."""
    return [SignaturePublic.of(row) for row in await registry.signatures()]


@router.get("/v1/signatures/{name}", response_model=SignaturePublic, dependencies=NEEDS_READ)
async def get_signature(name: str, registry: RegistryDep) -> SignaturePublic:
    with registry_answers():
        return SignaturePublic.of(await registry.signature(name))


@router.put("/v1/signatures/{name}", response_model=SignaturePut)
async def put_signature(name: str, registry: RegistryDep, caller: AdminCaller) -> SignaturePut:
    """Add a signature as a draft (a rejected one becomes a draft again); others are unchanged."""
    with registry_answers():
        row, created = await registry.put_signature(name, by=caller.name)
    return SignaturePut(signature=SignaturePublic.of(row), created=created)


@router.post("/v1/signatures/{name}:submit", responses=STEP_ERRORS, response_model=SignaturePublic)
async def submit_signature(name: str, registry: RegistryDep, caller: AdminCaller) -> SignaturePublic:
    with registry_answers():
        return SignaturePublic.of(await registry.submit_signature(name, by=caller.name))


@router.post("/v1/signatures/{name}:approve", responses=STEP_ERRORS, response_model=SignaturePublic)
async def approve_signature(name: str, registry: RegistryDep, caller: AdminCaller) -> SignaturePublic:
    """Draft or pending -> approved: routes with this signature carry messages again."""
    with registry_answers():
        return SignaturePublic.of(await registry.approve_signature(name, by=caller.name))


@router.post("/v1/signatures/{name}:reject", responses=STEP_ERRORS, response_model=SignaturePublic)
async def reject_signature(
    name: str, rejection: Annotated[Rejection, Body()], registry: RegistryDep, caller: AdminCaller
) -> SignaturePublic:
    """Rejected (or withdrawn): routes that sign with it are skipped."""
    with registry_answers():
        return SignaturePublic.of(
            await registry.reject_signature(name, reason=rejection.reason, by=caller.name)
        )
