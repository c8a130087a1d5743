"""Routing one event: store it once, start the journeys it triggers, signal the ones that wait.

Signals are the dev server's scarcest resource, so a running journey is signalled only with events
it declared (goal, exit events, ``listens``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from nudge.logging import get_logger
from nudge.models import Category, Event, JourneyInput
from nudge.store import Customer, EventRecord, JourneyEntry, read_sessions, utcnow
from workflows.runtime import SA_CUSTOMER, SA_JOURNEY, Journey, Reentry

log = get_logger(__name__)


class Touch(BaseModel):
    workflow_id: str
    journey: str
    action: str
    """``started``, ``signalled`` or ``refused``."""
    reason: str | None = None


class RouteResult(BaseModel):
    event_id: str
    duplicate: bool = False
    touched: list[Touch] = Field(default_factory=list)

    @property
    def workflow_ids(self) -> list[str]:
        return [t.workflow_id for t in self.touched if t.action != "refused"]


@dataclass(frozen=True, slots=True)
class _Entry:
    """A journey instance an event started or joined, to record in ``journey_entry``."""

    workflow_id: str
    journey: str
    key: str | None
    run_id: str | None
    started: bool


class EventRouter:
    def __init__(
        self,
        *,
        client: Client,
        sessions: async_sessionmaker[AsyncSession],
        journeys: Iterable[type[Journey]],
        task_queue: str,
        transactional_task_queue: str | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._reads = read_sessions(sessions)
        self._journeys = tuple(journeys)
        # The priority lane: transactional journeys (and so their sends) run on their own queue.
        self._queues = {
            Category.MARKETING: task_queue,
            Category.TRANSACTIONAL: transactional_task_queue or task_queue,
        }
        self._overrides = overrides or {}

    async def route(self, event: Event) -> RouteResult:
        if event.occurred_at is None:
            event = event.model_copy(update={"occurred_at": utcnow()})
        if not await self._store(event):
            async with self._reads() as session:
                stored = await session.get(EventRecord, event.event_id)
            touched = (
                [Touch(workflow_id=w, journey="", action="earlier") for w in stored.workflow_ids]
                if stored
                else []
            )
            return RouteResult(event_id=event.event_id, duplicate=True, touched=touched)

        result = RouteResult(event_id=event.event_id)
        entries: list[_Entry] = []
        concerned = [
            j for j in self._journeys if event.name == j.trigger or event.name in j.listened_events()
        ]
        known = await self._known_entries(event.customer_id, [j.name for j in concerned])
        for journey in concerned:
            if event.name == journey.trigger:
                touch, entry = await self._enter(journey, event, known)
                result.touched.append(touch)
                if entry is not None:
                    entries.append(entry)
            else:
                running = [e for e in known.values() if e.journey == journey.name and not e.closed]
                result.touched.extend(await self._signal_running(journey, event, running))
        await self._record(event, entries, result.workflow_ids)
        log.info(
            "event_routed",
            event_id=event.event_id,
            event_name=event.name,
            customer_id=event.customer_id,
            touched=[f"{t.action}:{t.workflow_id}" for t in result.touched],
        )
        return result

    async def _store(self, event: Event) -> bool:
        """Insert the event (and a bare customer if unknown); False when ``event_id`` was seen."""
        async with self._sessions() as session:
            # Read before adding: the read would autoflush the event and raise a duplicate's
            # IntegrityError here, outside the handler below.
            known_customer = await session.get(Customer, event.customer_id) is not None
            session.add(_event_record(event))
            if not known_customer:
                session.add(Customer(id=event.customer_id))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                if await session.get(EventRecord, event.event_id) is not None:
                    return False
                # Only the bare customer collided (created concurrently): store the event alone.
                session.add(_event_record(event))
                try:
                    await session.commit()
                except IntegrityError:
                    return False
        return True

    async def _record(self, event: Event, entries: list[_Entry], workflow_ids: list[str]) -> None:
        """One transaction for what routing learned: the journey entries and the event's journeys."""
        for attempt in (1, 2):
            async with self._sessions() as session:
                for item in entries:
                    row = await session.get(JourneyEntry, item.workflow_id)
                    if row is None:
                        row = JourneyEntry(
                            workflow_id=item.workflow_id,
                            journey=item.journey,
                            customer_id=event.customer_id,
                            key=item.key,
                            run_id=item.run_id,
                        )
                    elif item.started:
                        row.entries += 1
                        row.entered_at = utcnow()
                        row.run_id = item.run_id
                        row.closed = False
                    session.add(row)
                await session.exec(
                    update(EventRecord)
                    .where(col(EventRecord.event_id) == event.event_id)
                    .values(workflow_ids=workflow_ids)
                )
                try:
                    await session.commit()
                    return
                except IntegrityError:
                    # A concurrent event recorded the same new entry first; go again as an update.
                    await session.rollback()
                    if attempt == 2:
                        raise

    async def _known_entries(self, customer_id: str, journeys: list[str]) -> dict[str, JourneyEntry]:
        """The customer's entries into these journeys, by workflow id: one read for the event."""
        if not journeys:
            return {}
        async with self._reads() as session:
            rows = await session.exec(
                select(JourneyEntry).where(
                    JourneyEntry.customer_id == customer_id, col(JourneyEntry.journey).in_(journeys)
                )
            )
            return {entry.workflow_id: entry for entry in rows.all()}

    async def _enter(
        self, journey: type[Journey], event: Event, known: Mapping[str, JourneyEntry]
    ) -> tuple[Touch, _Entry | None]:
        key: str | None = None
        if journey.key:
            raw = event.properties.get(journey.key)
            if raw in (None, ""):
                return Touch(
                    workflow_id=journey.workflow_id(event.customer_id),
                    journey=journey.name,
                    action="refused",
                    reason=f"event has no {journey.key!r} property, which {journey.name} is keyed by",
                ), None
            key = str(raw)
        workflow_id = journey.workflow_id(event.customer_id, key)
        entry = known.get(workflow_id)
        reuse = self._reuse_policy(journey.reentry, entry)
        try:
            handle = await self._client.start_workflow(
                journey.__name__,
                JourneyInput(
                    customer_id=event.customer_id,
                    key=key,
                    config=dict(self._overrides.get(journey.name, {})),
                ),
                id=workflow_id,
                task_queue=self._queues[journey.category],
                id_reuse_policy=reuse,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                start_signal="event",
                start_signal_args=[event],
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SA_JOURNEY, journey.name),
                        SearchAttributePair(SA_CUSTOMER, event.customer_id),
                    ]
                ),
                static_summary=f"{journey.name} for {event.customer_id}",
            )
        except WorkflowAlreadyStartedError:
            reason = (
                "re-entry not allowed"
                if journey.reentry == Reentry.NEVER
                else f"re-entry cool-down ({journey.reentry}) not over"
            )
            return Touch(workflow_id=workflow_id, journey=journey.name, action="refused", reason=reason), None
        started = entry is None or entry.run_id != handle.result_run_id
        touch = Touch(
            workflow_id=workflow_id, journey=journey.name, action="started" if started else "signalled"
        )
        return touch, _Entry(workflow_id, journey.name, key, handle.result_run_id, started)

    @staticmethod
    def _reuse_policy(reentry: str | timedelta, entry: JourneyEntry | None) -> WorkflowIDReusePolicy:
        if reentry == Reentry.ALWAYS:
            return WorkflowIDReusePolicy.ALLOW_DUPLICATE
        if isinstance(reentry, timedelta) and (entry is None or utcnow() - entry.entered_at >= reentry):
            return WorkflowIDReusePolicy.ALLOW_DUPLICATE
        return WorkflowIDReusePolicy.REJECT_DUPLICATE

    async def _signal_running(
        self, journey: type[Journey], event: Event, entries: list[JourneyEntry]
    ) -> list[Touch]:
        touched = []
        for entry in entries:
            try:
                await self._client.get_workflow_handle(entry.workflow_id).signal("event", event)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                await self._mark_closed(entry.workflow_id)
                continue
            touched.append(Touch(workflow_id=entry.workflow_id, journey=journey.name, action="signalled"))
        return touched

    async def _mark_closed(self, workflow_id: str) -> None:
        async with self._sessions() as session:
            entry = await session.get(JourneyEntry, workflow_id)
            if entry is not None:
                entry.closed = True
                session.add(entry)
                await session.commit()


def _event_record(event: Event) -> EventRecord:
    # Every field given: a missing one costs pydantic an ``inspect.signature`` of its default
    # factory on each event.
    now = utcnow()
    return EventRecord(
        event_id=event.event_id,
        customer_id=event.customer_id,
        name=event.name,
        properties=event.properties,
        occurred_at=event.occurred_at or now,
        received_at=now,
        workflow_ids=[],
    )
