"""API keys over HTTP (``admin``): list them, make one, revoke one.

- ``GET /v1/keys``: the live keys (``?revoked=true``: the revoked ones too), never the keys themselves
- ``POST /v1/keys`` ``{"name": "checkout-service", "scopes": ["events"]}``: the key, shown this once
- ``DELETE /v1/keys/{prefix}``: revoke it; it is refused from then on

``nudge keys`` does the same on the database directly, which is how the first key is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from nudge.apikeys import Scope
from nudge.errors import NotFound
from nudge.store import ApiKey, ApiKeyBase
from starter.api.auth import AUTH_ERRORS, NEEDS_ADMIN, AdminCaller, Problem
from starter.api.deps import KeysDep

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=AUTH_ERRORS)


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._@:-]*$")
    """Who will hold it (``checkout-service``): the audit trails record this name."""
    scopes: list[Scope] = Field(min_length=1)


class KeyPublic(ApiKeyBase):
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None


class KeyCreated(BaseModel):
    key: str
    """The key: shown this once; only its digest is kept."""
    api_key: KeyPublic


@router.get("", response_model=list[KeyPublic], dependencies=NEEDS_ADMIN)
async def list_keys(keys: KeysDep, revoked: Annotated[bool, Query()] = False) -> Sequence[ApiKey]:
    """The keys, oldest first, by name, prefix and scopes; never the keys themselves."""
    return await keys.list(revoked=revoked)


@router.post("", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyCreate, keys: KeysDep, caller: AdminCaller) -> KeyCreated:
    """Make a key; the answer holds the key itself, which cannot be read back later."""
    key, row = await keys.create(body.name, body.scopes, by=caller.name)
    return KeyCreated(key=key, api_key=KeyPublic.model_validate(row, from_attributes=True))


@router.delete("/{prefix}", response_model=KeyPublic, responses={404: {"model": Problem}})
async def revoke_key(prefix: str, keys: KeysDep, caller: AdminCaller) -> ApiKey:
    """Revoke a key by its prefix; it is refused at once by this gateway, and by others within
    ``NUDGE_API_KEY_CACHE``."""
    try:
        return await keys.revoke(prefix, by=caller.name)
    except NotFound as exc:
        raise HTTPException(404, detail=str(exc)) from exc
