"""Routing one event: store it once, start the journeys it triggers, signal the ones that wait.
Signals are the dev server's scarcest resource, so a running journey is signalled only with events
it declared (goal, exit events, ``listens``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
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

from nudge.contracts import EVENT, SA_CUSTOMER, SA_JOURNEY
from nudge.logging import get_logger
from nudge.metrics import CONVERSIONS, EVENTS
from nudge.models import Category, Event, JourneyInput
from nudge.sinks import StreamSink
from nudge.store import Customer, EventRecord, JourneyEntry, read_sessions, utcnow
from nudge.store.customers import mark_active
from starter.api.services.attribution import Attribution, publish_conversion
from workflows.journey import Journey, Reentry

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
        attribution_window: timedelta = timedelta(hours=48),
        sinks: Sequence[StreamSink] = (),
    ) -> None:
        self._sinks = sinks
        """The stream's sinks: a conversion is published with the event that made it."""
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
        self._attribution = Attribution(self._journeys, window=attribution_window)

    async def route(self, event: Event) -> RouteResult:
        """Route the event, then store it with what routing did, in one transaction.

        Routing comes first so that nothing is lost: a failure half-way (Temporal unreachable)
        leaves no stored event, and the sender's retry routes it again. Starts and signals are
        safe to repeat: signal-with-start uses the running journey, and journeys ignore an event
        id they have seen.
        """
        if event.occurred_at is None:
            event = event.model_copy(update={"occurred_at": utcnow()})
        concerned = [
            j for j in self._journeys if event.name == j.trigger or event.name in j.listened_events()
        ]
        async with self._reads() as session:
            stored = await session.get(EventRecord, event.event_id)
            known = {} if stored else await self._known_entries(session, event.customer_id, concerned)
        if stored is not None:
            EVENTS.labels("duplicate").inc()
            return _duplicate(stored)

        result = RouteResult(event_id=event.event_id)
        entries: list[_Entry] = []
        for journey in concerned:
            if event.name == journey.trigger:
                touch, entry = await self._enter(journey, event, known)
                result.touched.append(touch)
                if entry is not None:
                    entries.append(entry)
            else:
                running = [e for e in known.values() if e.journey == journey.name and not e.closed]
                result.touched.extend(await self._signal_running(journey, event, running))
        if not await self._record(event, entries, result.workflow_ids):
            # The same event, delivered twice at once: the other delivery stored it first.
            result.duplicate = True
        EVENTS.labels("duplicate" if result.duplicate else "routed").inc()
        log.info(
            "event_routed",
            event_id=event.event_id,
            event_name=event.name,
            customer_id=event.customer_id,
            touched=[f"{t.action}:{t.workflow_id}" for t in result.touched],
        )
        return result

    async def _record(self, event: Event, entries: list[_Entry], workflow_ids: list[str]) -> bool:
        """One transaction for the event (and a bare customer if unknown), the journeys it went to,
        and the journey entries. False when the event was stored meanwhile (a concurrent repeat)."""
        for attempt in (1, 2):
            async with self._sessions() as session:
                # Every read before any add: a read autoflushes pending rows, and a collision must
                # surface at the commit below, not inside a read.
                if await session.get(EventRecord, event.event_id) is not None:
                    return False
                occurred = event.occurred_at or utcnow()
                known_customer = await mark_active(session, event.customer_id, occurred)
                conversion = await self._attribution.conversion(session, event)
                rows = {
                    item.workflow_id: await session.get(JourneyEntry, item.workflow_id) for item in entries
                }
                for item in entries:
                    row = rows[item.workflow_id]
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
                if not known_customer:
                    session.add(Customer(id=event.customer_id, last_active_at=occurred))
                session.add(_event_record(event, workflow_ids))
                if conversion is not None:
                    session.add(conversion)
                    publish_conversion(session, self._sinks, conversion)
                try:
                    await session.commit()
                    if conversion is not None:
                        CONVERSIONS.labels(conversion.journey).inc()
                    return True
                except IntegrityError:
                    # A concurrent event created the same customer or entry first (PostgreSQL);
                    # go again, as an update.
                    await session.rollback()
                    if attempt == 2:
                        raise
        return False

    @staticmethod
    async def _known_entries(
        session: AsyncSession, customer_id: str, journeys: list[type[Journey]]
    ) -> dict[str, JourneyEntry]:
        """The customer's entries into these journeys, by workflow id: one read for the event."""
        if not journeys:
            return {}
        names = [j.name for j in journeys]
        rows = await session.exec(
            select(JourneyEntry).where(
                JourneyEntry.customer_id == customer_id, col(JourneyEntry.journey).in_(names)
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
        legacy = journey.legacy_workflow_id(event.customer_id, key)
        if workflow_id not in known and legacy in known and not known[legacy].closed:
            workflow_id = legacy  # started before ids were escaped: keep signalling that run
        entry = known.get(workflow_id)
        reuse = self._reuse_policy(journey.reentry, entry)
        try:
            handle = await self._client.start_workflow(
                journey.run,
                JourneyInput(
                    customer_id=event.customer_id,
                    key=key,
                    config=dict(self._overrides.get(journey.name, {})),
                ),
                id=workflow_id,
                task_queue=self._queues[journey.category],
                id_reuse_policy=reuse,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                start_signal=EVENT.name,
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
            cooldown = journey.reentry.cooldown
            reason = (
                "re-entry not allowed" if cooldown is None else f"re-entry cool-down ({cooldown}) not over"
            )
            return Touch(workflow_id=workflow_id, journey=journey.name, action="refused", reason=reason), None
        started = entry is None or entry.run_id != handle.result_run_id
        touch = Touch(
            workflow_id=workflow_id, journey=journey.name, action="started" if started else "signalled"
        )
        return touch, _Entry(workflow_id, journey.name, key, handle.result_run_id, started)

    @staticmethod
    def _reuse_policy(reentry: Reentry, entry: JourneyEntry | None) -> WorkflowIDReusePolicy:
        since = None if entry is None else utcnow() - entry.entered_at
        if reentry.always or (reentry.cooldown is not None and reentry.allows(since_last_entry=since)):
            return WorkflowIDReusePolicy.ALLOW_DUPLICATE
        return WorkflowIDReusePolicy.REJECT_DUPLICATE

    async def _signal_running(
        self, journey: type[Journey], event: Event, entries: list[JourneyEntry]
    ) -> list[Touch]:
        touched = []
        for entry in entries:
            try:
                await EVENT.send(self._client.get_workflow_handle(entry.workflow_id), event)
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


def _duplicate(stored: EventRecord) -> RouteResult:
    """An event seen before: nothing is routed again; it says where it went the first time."""
    touched = [Touch(workflow_id=w, journey="", action="earlier") for w in stored.workflow_ids]
    return RouteResult(event_id=stored.event_id, duplicate=True, touched=touched)


def _event_record(event: Event, workflow_ids: list[str]) -> EventRecord:
    now = utcnow()  # every field given: a missing one costs an ``inspect.signature`` per event
    return EventRecord(
        event_id=event.event_id,
        customer_id=event.customer_id,
        name=event.name,
        properties=event.properties,
        occurred_at=event.occurred_at or now,
        received_at=now,
        workflow_ids=workflow_ids,
    )
