"""Customer import jobs (``nudge customers import``): open, upload rows in chunks, commit or abort.

Nothing reaches ``customer`` before the commit, which merges every staged row in one transaction;
the rows a chunk rejects are answered with their line and reason and are not imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Self

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field, model_validator

from nudge.store import CustomerImport, CustomerImportBase
from starter.api.auth import AUTH_ERRORS, CONFLICT, NEEDS_EVENTS, NOT_FOUND, STEP_ERRORS
from starter.api.deps import SessionsDep, SettingsDep
from starter.api.errors import invalid
from starter.api.services.imports import ImportClosed, Imports, InvalidImport, UnknownImport

router = APIRouter(tags=["customers"], responses=AUTH_ERRORS, dependencies=NEEDS_EVENTS)

MAX_ROWS = 10_000
"""Rows per chunk, as ``/v1/customers:batch`` takes at most (the body limit caps it too)."""

ImportId = Annotated[str, Path(max_length=40, description="The id the import was opened with.")]


class ImportOpen(BaseModel):
    header: list[Annotated[str, Field(max_length=200)]] = Field(min_length=1, max_length=1000)
    """The CSV's column names, in order: ``id`` (required), ``name``, ``phone``,
    ``lifecycle_stage``, ``country``, ``timezone``, ``consent_source``, ``consent_text``,
    ``consent_at``; any other column becomes an attribute."""
    actor: str | None = Field(default=None, max_length=200)
    """Who imports, for the audit of the consent the rows give."""


class ImportRows(BaseModel):
    lines: list[Annotated[int, Field(ge=1)]] = Field(max_length=MAX_ROWS)
    """Each row's line in the file, for the rejects' report (and the order of an id given twice)."""
    rows: list[list[str | None]] = Field(max_length=MAX_ROWS)
    """Each row's values, in the header's order (a missing value is null; extra ones are ignored)."""

    @model_validator(mode="after")
    def _one_line_per_row(self) -> Self:
        if len(self.lines) != len(self.rows):
            raise ValueError(f"{len(self.lines)} lines for {len(self.rows)} rows: give one line per row")
        return self


class RejectPublic(BaseModel):
    line: int
    customer_id: str
    reason: str
    """Why the row is not imported, e.g. ``phone: not a valid phone number for its region``."""


class StagedPublic(BaseModel):
    staged: int
    """Rows of this chunk staged for the commit."""
    rejected: list[RejectPublic]
    """Rows of this chunk that will not be imported, with their reasons."""


class CustomerImportPublic(CustomerImportBase):
    id: str
    status: str
    """``open``, then ``committed``, ``aborted`` or ``expired`` (left open for an hour)."""
    staged: int
    rejected: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    created: int | None
    """Once committed: customers that did not exist before."""
    updated: int | None
    """Once committed: customers that existed and were replaced."""
    consents: int | None
    """Once committed: consents recorded, for customers with none on record before."""


def _imports(sessions: SessionsDep, settings: SettingsDep) -> Imports:
    return Imports(sessions, default_region=settings.default_region, workers=settings.import_workers)


@router.post("/v1/customer-imports", status_code=201, response_model=CustomerImportPublic)
async def open_import(body: ImportOpen, sessions: SessionsDep, settings: SettingsDep) -> CustomerImport:
    """Open an import of CSV rows with this header. Imports left open for an hour are discarded."""
    try:
        return await _imports(sessions, settings).open(body.header, actor=body.actor)
    except InvalidImport as exc:
        raise invalid(str(exc), loc=("body", "header")) from exc


@contextmanager
def _refusals() -> Iterator[None]:
    """An import step's refusals as the answers ``STEP_ERRORS`` declares: 404 for an unknown
    import, 409 for a step its state refuses (closed, or lines given twice)."""
    try:
        yield
    except UnknownImport as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    except (ImportClosed, InvalidImport) as exc:
        raise HTTPException(409, detail=str(exc)) from exc


@router.get("/v1/customer-imports/{import_id}", response_model=CustomerImportPublic, responses=NOT_FOUND)
async def read_import(import_id: ImportId, sessions: SessionsDep, settings: SettingsDep) -> CustomerImport:
    """The import's state and counts (and, once committed, what the commit did)."""
    with _refusals():
        return await _imports(sessions, settings).read(import_id)


@router.post(
    "/v1/customer-imports/{import_id}/rows",
    response_model=StagedPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def stage_rows(
    import_id: ImportId, body: ImportRows, sessions: SessionsDep, settings: SettingsDep
) -> dict[str, Any]:
    """Upload a chunk of rows: each is checked (id, phone to E.164 in its country or
    NUDGE_DEFAULT_REGION, time zone, consent) and staged, or rejected with its reason. Nothing is
    imported until the commit."""
    with _refusals():
        staged = await _imports(sessions, settings).stage(import_id, body.lines, body.rows)
    return {"staged": staged.staged, "rejected": [vars(reject) for reject in staged.rejects]}


@router.post(
    "/v1/customer-imports/{import_id}:commit", response_model=CustomerImportPublic, responses=STEP_ERRORS
)
async def commit_import(import_id: ImportId, sessions: SessionsDep, settings: SettingsDep) -> CustomerImport:
    """Import every staged row in one transaction: create or replace the profiles (the last line
    of an id wins) and record the consent given with them for customers with none on record.
    Committing again answers the same."""
    with _refusals():
        return await _imports(sessions, settings).commit(import_id)


@router.post(
    "/v1/customer-imports/{import_id}:abort", response_model=CustomerImportPublic, responses=STEP_ERRORS
)
async def abort_import(import_id: ImportId, sessions: SessionsDep, settings: SettingsDep) -> CustomerImport:
    """Give the import up: its staged rows are deleted and nothing is imported. Idempotent; 409
    once it was committed."""
    with _refusals():
        return await _imports(sessions, settings).abort(import_id)
