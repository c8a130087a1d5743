"""Audiences over HTTP: saved queries over the profiles, and uploaded lists of customer ids.

- ``POST /v1/audiences`` ``{"name": "active-cn", "where": {...}}``: create or replace (admin)
- ``PUT /v1/audiences/{name}/members?replace=true``: a chunk of a list audience's ids, as JSON
  ``{"ids": [...]}`` or ``text/csv`` (the first column; a header ``id``/``customer_id`` is skipped)
- ``GET /v1/audiences``, ``GET /v1/audiences/{name}``, ``GET /v1/audiences/{name}/count`` (read)
- ``GET /v1/audiences/{name}/sample?size=20``: members' profiles, phones masked (admin: names and
  numbers are personal data, as a customer's timeline is)
- ``DELETE /v1/audiences/{name}`` (admin)

A definition that names an unknown field, an operator its field does not take or a value of the
wrong type is a 422 whose message names it (``nudge.audiences``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field, ValidationError

from activities.audiences import Audiences, UnknownAudience
from nudge.audiences import AUDIENCE_NAME_PATTERN, AudienceIn
from nudge.models import IDENTIFIER_PATTERN
from nudge.phone import mask
from nudge.store import Audience, AudienceBase
from starter.api.auth import AUTH_ERRORS, CONFLICT, NEEDS_ADMIN, NEEDS_READ, NOT_FOUND, AdminCaller
from starter.api.deps import SessionsDep
from starter.api.errors import invalid
from starter.api.services import audiences as service

router = APIRouter(prefix="/v1/audiences", tags=["audiences"], responses=AUTH_ERRORS)
Name = Annotated[str, Path(pattern=AUDIENCE_NAME_PATTERN, description="The audience's name.")]
Person = Annotated[
    str | None, Query(min_length=1, max_length=100, description="The person acting, for the record.")
]
MAX_IDS = 10_000
"""Ids in one PUT of members (the CLI sends chunks of 5,000)."""
_ID = re.compile(IDENTIFIER_PATTERN)


class AudiencePublic(AudienceBase):
    created_at: datetime
    updated_at: datetime


class AudienceCount(BaseModel):
    name: str
    count: int
    """Customers in it now (erased ones never are)."""


class MemberIds(BaseModel):
    ids: list[str] = Field(max_length=MAX_IDS)


class UploadPublic(BaseModel):
    received: int
    stored: int
    """Ids newly in the list."""
    members: int
    """The list's members after this chunk."""
    unknown: int
    """Ids that are no customer (or an erased one): not stored."""
    duplicates: int
    unknown_ids: list[str]
    """The first of those ids."""


class SampleCustomer(BaseModel):
    id: str
    name: str | None
    phone: str | None
    """Masked: ``+86*******8000``."""
    lifecycle_stage: str
    country: str | None
    timezone: str | None
    language: str | None
    tags: list[str]


@router.post("", response_model=AudiencePublic)
async def save_audience(
    body: AudienceIn, sessions: SessionsDep, caller: AdminCaller, by: Person = None
) -> Audience:
    """Create or replace an audience: a query (``where``) or an empty list to upload ids into."""
    return await service.save(sessions, body, by=caller.acting_for(by))


@router.put(
    "/{name}/members",
    response_model=UploadPublic,
    responses={**NOT_FOUND, **CONFLICT},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": MemberIds.model_json_schema()},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def put_members(
    name: Name,
    request: Request,
    sessions: SessionsDep,
    caller: AdminCaller,
    replace: Annotated[
        bool, Query(description="Replace the members (the first chunk) or add to them.")
    ] = False,
) -> service.Upload:
    """A chunk of a list audience's customer ids; ids that are no customer are counted, not stored.
    409 for a query audience."""
    ids = await _ids(request)
    try:
        return await service.upload(sessions, name, ids, replace=replace)
    except UnknownAudience as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    except service.NotAList as exc:
        raise HTTPException(409, detail=str(exc)) from exc


@router.get("", response_model=list[AudiencePublic], dependencies=NEEDS_READ)
async def list_audiences(sessions: SessionsDep) -> Sequence[Audience]:
    """Every audience, by name."""
    return await service.list_audiences(sessions)


@router.get("/{name}", response_model=AudiencePublic, responses=NOT_FOUND, dependencies=NEEDS_READ)
async def get_audience(name: Name, sessions: SessionsDep) -> Audience:
    try:
        return await service.read(sessions, name)
    except UnknownAudience as exc:
        raise HTTPException(404, detail=str(exc)) from exc


@router.get("/{name}/count", response_model=AudienceCount, responses=NOT_FOUND, dependencies=NEEDS_READ)
async def count_audience(name: Name, sessions: SessionsDep) -> AudienceCount:
    """How many customers the audience holds now, before anything is sent to them."""
    try:
        return AudienceCount(name=name, count=await Audiences(sessions).count(name))
    except UnknownAudience as exc:
        raise HTTPException(404, detail=str(exc)) from exc


@router.get(
    "/{name}/sample", response_model=list[SampleCustomer], responses=NOT_FOUND, dependencies=NEEDS_ADMIN
)
async def sample_audience(
    name: Name, sessions: SessionsDep, size: Annotated[int, Query(ge=1, le=200)] = 20
) -> list[SampleCustomer]:
    """The first ``size`` members in id order, phones masked."""
    try:
        customers = await Audiences(sessions).sample(name, size=size)
    except UnknownAudience as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    shown = []
    for customer in customers:
        attributes = customer.attributes or {}
        tags = attributes.get("tags")
        language = attributes.get("language")
        shown.append(
            SampleCustomer(
                id=customer.id,
                name=customer.name,
                phone=mask(customer.phone) if customer.phone else None,
                lifecycle_stage=customer.lifecycle_stage,
                country=customer.country,
                timezone=customer.timezone,
                language=language if isinstance(language, str) else None,
                tags=[tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else [],
            )
        )
    return shown


@router.delete("/{name}", response_model=AudiencePublic, responses=NOT_FOUND)
async def delete_audience(
    name: Name, sessions: SessionsDep, caller: AdminCaller, by: Person = None
) -> Audience:
    """Delete an audience (a list's members with it); a broadcast running on it then fails its next
    page with ``unknown audience``."""
    try:
        return await service.remove(sessions, name, by=caller.acting_for(by))
    except UnknownAudience as exc:
        raise HTTPException(404, detail=str(exc)) from exc


async def _ids(request: Request) -> list[str]:
    """The ids of a members body, JSON or CSV; a 422 that says which line or item is wrong."""
    raw = await request.body()
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise invalid("the body is not UTF-8") from None
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == "text/csv":
        ids = []
        for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            cell = row[0].strip() if row else ""
            if cell and not (line == 1 and cell.lower() in ("id", "customer_id")):
                ids.append(cell)
        if len(ids) > MAX_IDS:
            raise invalid(f"at most {MAX_IDS} ids a request: send the rest in further chunks")
    else:
        try:
            ids = MemberIds.model_validate(json.loads(text)).ids
        except (ValueError, ValidationError) as exc:
            raise invalid(f'the body is not {{"ids": [...]}} with at most {MAX_IDS} ids') from exc
    for index, customer_id in enumerate(ids):
        if len(customer_id) > 200 or not _ID.match(customer_id):
            raise invalid(f"id {index + 1} is not a customer id: 1-200 characters, no control characters")
    return ids
