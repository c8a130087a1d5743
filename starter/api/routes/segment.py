"""The Segment spec's HTTP calls (``/v1/track``, ``/v1/page``, ``/v1/identify``, ``/v1/batch``):
a Segment or RudderStack webhook destination sends them with a Nudge key (``Authorization:
Bearer nk_...``, scope ``events``). The mapping is ``starter/api/services/segment.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.errors import InvalidPhoneNumber
from nudge.models import EventIn
from nudge.phone import to_e164
from nudge.settings import Settings
from nudge.store import Customer, CustomerCreate, read_sessions
from starter.api.auth import AUTH_ERRORS, NEEDS_EVENTS
from starter.api.deps import IntakeDep, SessionsDep, SettingsDep
from starter.api.errors import invalid
from starter.api.services.customers import upsert_customers
from starter.api.services.intake import EventRouter
from starter.api.services.segment import (
    EVENT_FIELDS,
    Identify,
    Other,
    Page,
    SegmentRefused,
    Track,
    customer_of,
    event_of,
    profile_of,
)

router = APIRouter(tags=["segment"], responses=AUTH_ERRORS)
BATCH_LIMIT = 500
PROFILE = {"id", "name", "phone", "lifecycle_stage", "country", "timezone", "attributes"}
"""What a stored profile keeps when an ``identify`` merges traits into it."""
AnyCall = Annotated[Track | Page | Identify | Other, Field(discriminator="type")]


class SegmentResult(BaseModel):
    messageId: str
    type: str
    status: Literal["accepted", "duplicate", "identified", "skipped"]
    """``duplicate``: an event already stored under this ``messageId`` (a redelivery)."""
    workflow_ids: list[str] = Field(default_factory=list)
    reason: str | None = None


class SegmentBatch(BaseModel):
    batch: list[AnyCall] = Field(min_length=1, max_length=BATCH_LIMIT)


class SegmentResults(BaseModel):
    results: list[SegmentResult]


class _Take:
    """One request's calls: every call checked first (a 422 stores nothing), then each taken."""

    def __init__(
        self, intake: EventRouter, sessions: async_sessionmaker[AsyncSession], settings: Settings
    ) -> None:
        self._intake = intake
        self._sessions = sessions
        self._settings = settings

    async def __call__(
        self, calls: list[Any], at: Callable[[int], tuple[str | int, ...]] = lambda _: ("body",)
    ) -> list[SegmentResult]:
        """``at``: where the call with that index is in the request's body."""
        self._profiles: dict[str, CustomerCreate] = {}  # identifies earlier in this request
        checked = [await self._check(call, at(i)) for i, call in enumerate(calls)]
        return [await self._take(call, event) for call, event in zip(calls, checked, strict=True)]

    async def _check(self, call: Any, at: tuple[str | int, ...]) -> EventIn | CustomerCreate | None:
        """The event a track or page call makes, or the profile an identify call leaves (its
        traits merged into the stored one), each validated; None for a call that is skipped."""
        try:
            if isinstance(call, Other):
                return None
            if isinstance(call, Identify):
                customer_id = customer_of(call)
                if (earlier := self._profiles.get(customer_id)) is not None:
                    stored: dict[str, Any] | None = earlier.model_dump(include=PROFILE)
                else:
                    async with read_sessions(self._sessions)() as session:
                        row = await session.get(Customer, customer_id)
                    stored = row.model_dump(include=PROFILE) if row else None
                try:
                    profile = profile_of(call, stored)
                except ValidationError as exc:
                    raise _refused(exc, at, _trait_source) from exc
                self._profiles[customer_id] = profile
                if profile.phone:
                    region = profile.country or self._settings.default_region
                    to_e164(profile.phone, default_region=region)
                return profile
            body = event_of(call)
        except SegmentRefused as exc:
            raise invalid(str(exc), loc=(*at, exc.field)) from exc
        except InvalidPhoneNumber as exc:
            raise invalid(str(exc), loc=(*at, "traits", "phone"), kind="phone_number") from exc
        try:
            return EventIn.model_validate(body)
        except ValidationError as exc:
            raise _refused(exc, at, lambda field: (EVENT_FIELDS.get(field, field),)) from exc

    async def _take(self, call: Any, checked: EventIn | CustomerCreate | None) -> SegmentResult:
        if isinstance(call, Other):
            reason = f"{call.type} has no meaning in Nudge (track, page, screen and identify do)"
            return SegmentResult(messageId=call.messageId, type=call.type, status="skipped", reason=reason)
        if isinstance(checked, CustomerCreate):
            await upsert_customers(self._sessions, [checked], default_region=self._settings.default_region)
            return SegmentResult(messageId=call.messageId, type=call.type, status="identified")
        event = checked
        assert isinstance(event, EventIn)
        result = await self._intake.route(event)
        return SegmentResult(
            messageId=call.messageId,
            type=call.type,
            status="duplicate" if result.duplicate else "accepted",
            workflow_ids=result.workflow_ids,
        )


def _trait_source(field: str) -> tuple[str, ...]:
    """Where a profile's field came from in an ``identify`` call."""
    return ("context", "timezone") if field == "timezone" else ("traits", field)


def _refused(
    exc: ValidationError, at: tuple[str | int, ...], source: Callable[[str], tuple[str, ...]]
) -> RequestValidationError:
    """``exc`` as a 422 whose ``loc`` names the Segment call's field (``source``) it came from."""
    return RequestValidationError(
        [
            {**e, "loc": (*at, *source(str(e["loc"][0])), *e["loc"][1:])}
            for e in exc.errors(include_input=False, include_context=False)
        ]
    )


def _take(intake: IntakeDep, sessions: SessionsDep, settings: SettingsDep) -> _Take:
    return _Take(intake, sessions, settings)


TakeDep = Annotated[_Take, Depends(_take)]


@router.post("/v1/track", response_model=SegmentResult, dependencies=NEEDS_EVENTS)
async def segment_track(call: Track, take: TakeDep) -> SegmentResult:
    """A Segment ``track`` call: the event ``event`` in snake case, ``messageId`` its id."""
    [result] = await take([call])
    return result


@router.post("/v1/page", response_model=SegmentResult, dependencies=NEEDS_EVENTS)
async def segment_page(call: Page, take: TakeDep) -> SegmentResult:
    """A Segment ``page`` (or ``screen``) call: the event ``page_viewed`` (``screen_viewed``)."""
    [result] = await take([call])
    return result


@router.post("/v1/identify", response_model=SegmentResult, dependencies=NEEDS_EVENTS)
async def segment_identify(call: Identify, take: TakeDep) -> SegmentResult:
    """A Segment ``identify`` call: its traits merged into the customer's profile."""
    [result] = await take([call])
    return result


@router.post("/v1/batch", response_model=SegmentResults, dependencies=NEEDS_EVENTS)
async def segment_batch(body: SegmentBatch, take: TakeDep) -> dict[str, Any]:
    """Segment's ``batch``: every call checked first (one that does not fit is a 422 and nothing
    is taken), then each taken in order."""
    return {"results": await take(body.batch, lambda i: ("body", "batch", i))}
