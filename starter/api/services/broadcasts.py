"""Broadcasts through Temporal: start one, read its progress, pause, resume or cancel it through its
updates, list them by the ``NudgeBroadcastId`` search attribute, and keep recurring ones on
Temporal Schedules (``broadcast_schedules.py``; the models are in ``broadcast_models.py``). The
API's routes and ``nudge broadcast`` share it.

A broadcast's workflow id is ``broadcast:<id>``; a scheduled run's is the schedule's with its time
appended, and its broadcast id is derived from that (``workflows/broadcast/ids.py``), so finding a
broadcast by id asks visibility when the id is not a workflow's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.compliance.registry import Registry
from nudge.broadcasts import (
    BroadcastState,
    Progress,
    broadcast_workflow_id,
)
from nudge.contracts import PROGRESS, SA_BROADCAST
from nudge.errors import InvalidInput
from nudge.store import Audience, Message, read_sessions
from starter.api.services.broadcast_models import (
    BroadcastCreate,
    BroadcastExists,
    BroadcastRefused,
    BroadcastView,
    InvalidBroadcast,
    NoWorkerAnswered,
    UnknownBroadcast,
    memo_of,
    new_broadcast_id,
    spec_of,
)
from workflows.broadcast import Broadcast
from workflows.broadcast.control import FINAL_MEMO

ASK_TIMEOUT = timedelta(seconds=10)
"""How long a progress query waits for a worker to answer."""
UPDATE_TIMEOUT = timedelta(seconds=120)
"""How long a pause, resume or cancel waits to take effect (a pause waits for its batches)."""


class Broadcasts:
    """Args:
    client: the Temporal client (the gateway's, or the CLI's own).
    sessions: the store, for an audience's existence and the list on a server without visibility.
    registry: the templates, whose existence a start checks.
    task_queue: where the worker runs ``Broadcast`` (the main lane).
    routes: the routes' names a ``route`` may name.
    """

    def __init__(
        self,
        client: Client,
        *,
        sessions: async_sessionmaker[AsyncSession],
        registry: Registry,
        task_queue: str,
        routes: Sequence[str],
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._registry = registry
        self._task_queue = task_queue
        self._routes = list(routes)

    async def check(self, body: BroadcastCreate, *, recurring: bool = False) -> None:
        """Refuse what would fail once started: an unknown audience, template or route, times that
        cannot work. Raises ``InvalidBroadcast`` naming the field."""
        async with read_sessions(self._sessions)() as session:
            if await session.get(Audience, body.audience) is None:
                raise InvalidBroadcast(
                    f"no audience named {body.audience!r} (nudge audiences list)", field="audience"
                )
        try:
            known = await self._registry.templates(body.template)
        except InvalidInput:
            known = []
        if not known:
            raise InvalidBroadcast(f"no template {body.template!r} in the registry", field="template")
        if body.route is not None and body.route not in self._routes:
            raise InvalidBroadcast(
                f"no route {body.route!r}; routes: {', '.join(self._routes)}", field="route"
            )
        if recurring and (body.start_at or body.deadline):
            raise InvalidBroadcast("a recurring broadcast starts at its schedule's times", field="start_at")
        start = body.start_at or datetime.now(UTC)
        if body.deadline is not None and body.deadline <= start:
            raise InvalidBroadcast("the deadline must come after the start", field="deadline")

    async def start(self, body: BroadcastCreate, *, by: str) -> BroadcastView:
        """Start the broadcast. Raises ``InvalidBroadcast``, or ``BroadcastExists`` for an id used before."""
        await self.check(body)
        spec = spec_of(body, body.broadcast_id or new_broadcast_id(body.template, datetime.now(UTC)))
        workflow_id = broadcast_workflow_id(spec.broadcast_id)
        try:
            await self._client.start_workflow(
                Broadcast.run,
                spec,
                id=workflow_id,
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(SA_BROADCAST, spec.broadcast_id)]
                ),
                memo=memo_of(spec, by=by),
                static_summary=f"Broadcast {spec.template} to audience {spec.audience}",
            )
        except WorkflowAlreadyStartedError as exc:
            raise BroadcastExists(f"broadcast {spec.broadcast_id} exists already; pick another --id") from exc
        progress = Progress(broadcast_id=spec.broadcast_id, state=BroadcastState.SCHEDULED)
        return BroadcastView(
            broadcast_id=spec.broadcast_id,
            workflow_id=workflow_id,
            status="running",
            progress=progress,
            audience=spec.audience,
            template=spec.template,
            started_by=by,
        )

    async def find(self, broadcast_id: str) -> WorkflowHandle[Any, Progress]:
        """The broadcast's workflow: its own id, else (a scheduled run) the one visibility knows by
        the search attribute. Raises ``UnknownBroadcast``."""
        handle = self._client.get_workflow_handle_for(Broadcast.run, broadcast_workflow_id(broadcast_id))
        try:
            await handle.describe()
            return handle
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
        try:
            async for execution in self._client.list_workflows(
                f"{SA_BROADCAST.name} = '{broadcast_id}'", limit=1
            ):
                return self._client.get_workflow_handle_for(Broadcast.run, execution.id)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.UNIMPLEMENTED:  # a server without visibility queries
                raise
        raise UnknownBroadcast(f"no broadcast {broadcast_id!r}")

    async def view(self, broadcast_id: str) -> BroadcastView:
        """Where the broadcast is. Raises ``UnknownBroadcast``."""
        handle = await self.find(broadcast_id)
        return await self._view(await handle.describe(), handle)

    async def _view(
        self, execution: WorkflowExecution, handle: WorkflowHandle[Any, Progress]
    ) -> BroadcastView:
        status = execution.status or WorkflowExecutionStatus.RUNNING
        memo = await execution.memo()
        progress: Progress | None = None
        failure = None
        if status is not WorkflowExecutionStatus.RUNNING and FINAL_MEMO in memo:
            progress = await execution.memo_value(FINAL_MEMO, type_hint=Progress)
        elif status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
            progress = await self._ask(handle)
        if status is WorkflowExecutionStatus.FAILED:
            try:
                await handle.result(rpc_timeout=ASK_TIMEOUT)
            except WorkflowFailureError as exc:
                failure = str(exc.cause)
        elif (
            status is not WorkflowExecutionStatus.RUNNING and status is not WorkflowExecutionStatus.COMPLETED
        ):
            failure = status.name.lower()
        return BroadcastView(
            broadcast_id=progress.broadcast_id if progress else execution.id.removeprefix("broadcast:"),
            workflow_id=execution.id,
            status=status.name.lower(),
            progress=progress,
            processed=progress.processed if progress else 0,
            audience=memo.get("audience"),
            template=memo.get("template"),
            started_by=memo.get("by"),
            failure=failure,
        )

    async def _ask(self, handle: WorkflowHandle[Any, Progress]) -> Progress | None:
        try:
            progress: Progress = await handle.query(
                PROGRESS.name, result_type=Progress, rpc_timeout=ASK_TIMEOUT
            )
        except (RPCError, WorkflowQueryFailedError):
            return None
        return progress

    async def pause(self, broadcast_id: str) -> Progress:
        """No new batch; answers once those in flight finished."""
        return await self._update(broadcast_id, "pause")

    async def resume(self, broadcast_id: str) -> Progress:
        return await self._update(broadcast_id, "resume")

    async def cancel(self, broadcast_id: str) -> Progress:
        """Stop; answers once the batches in flight finished and whoever waits has expired."""
        return await self._update(broadcast_id, "cancel")

    async def _update(self, broadcast_id: str, update: str) -> Progress:
        handle = await self.find(broadcast_id)
        description = await handle.describe()
        if description.status is not WorkflowExecutionStatus.RUNNING:
            state = (description.status or WorkflowExecutionStatus.RUNNING).name.lower()
            raise BroadcastRefused(f"cannot {update} broadcast {broadcast_id}: it has finished ({state})")
        try:
            async with asyncio.timeout(UPDATE_TIMEOUT.total_seconds()):
                progress: Progress = await handle.execute_update(update, result_type=Progress)
        except WorkflowUpdateFailedError as exc:  # its validator's reason, or the broadcast's failure
            raise BroadcastRefused(str(exc.cause)) from exc
        except TimeoutError as exc:
            raise NoWorkerAnswered(
                f"no worker took up the {update} of broadcast {broadcast_id} within "
                f"{UPDATE_TIMEOUT.total_seconds():.0f} s; it takes effect when one does "
                "(is `nudge worker` up?)"
            ) from exc
        return progress

    async def latest(self, *, limit: int = 50) -> list[BroadcastView]:
        """The latest broadcasts, newest first: through visibility, or from the store's messages on a
        server without visibility queries (the test server; a broadcast that sent nothing is left out)."""
        query = f"{SA_BROADCAST.name} IS NOT NULL AND ExecutionStatus != 'ContinuedAsNew'"
        try:
            executions = [e async for e in self._client.list_workflows(query, limit=limit)]
        except RPCError as exc:
            if exc.status is not RPCStatusCode.UNIMPLEMENTED:
                raise
            return [await self.view(broadcast_id) for broadcast_id in await self._sent_broadcasts(limit)]
        executions.sort(key=lambda e: e.start_time, reverse=True)
        return list(
            await asyncio.gather(
                *(
                    self._view(e, self._client.get_workflow_handle_for(Broadcast.run, e.id))
                    for e in executions
                )
            )
        )

    async def _sent_broadcasts(self, limit: int) -> list[str]:
        async with read_sessions(self._sessions)() as session:
            latest = func.max(Message.created_at)
            rows = await session.exec(
                select(Message.broadcast_id)
                .where(col(Message.broadcast_id).is_not(None))
                .group_by(col(Message.broadcast_id))
                .order_by(latest.desc())
                .limit(limit)
            )
            return [broadcast_id for broadcast_id in rows.all() if broadcast_id]
