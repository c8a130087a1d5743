"""Recurring broadcasts: a Temporal Schedule per name (``broadcast:<name>``, on the UI's Schedules
page) whose every run is a broadcast of its own, ``<name>-YYYYMMDD-HHMMSS`` after its scheduled
time (``workflows/broadcast/ids.py``), so that a weekly broadcast reaches its audience every week.

Runs may overlap (a run still sweeping deferred recipients when the next one starts): each is its
own broadcast, and the frequency caps hold across them as across journeys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.service import RPCError, RPCStatusCode

from nudge.broadcasts import BROADCAST_ID_PATTERN, broadcast_workflow_id
from nudge.errors import InvalidInput
from starter.api.services.broadcast_models import BroadcastCreate, InvalidBroadcast, memo_of, spec_of
from starter.api.services.broadcasts import Broadcasts
from workflows.broadcast import Broadcast
from workflows.broadcast.ids import SCHEDULE_NAME_MAX, run_broadcast_id

SCHEDULE_PREFIX = "broadcast:"


class UnknownSchedule(InvalidInput):
    """No recurring broadcast has this name."""


class ScheduleExists(InvalidInput):
    """A recurring broadcast has this name already."""


class ScheduleView(BaseModel):
    name: str
    schedule_id: str
    cron: str
    time_zone: str
    audience: str | None = None
    template: str | None = None
    paused: bool = False
    next_runs: list[datetime] = []
    recent: list[str] = []
    """The broadcast ids of its latest runs, oldest first."""


def schedule_id(name: str) -> str:
    return f"{SCHEDULE_PREFIX}{name}"


def check_name(name: str) -> None:
    """A name whose runs' ids fit the broadcast id pattern. Raises ``InvalidBroadcast``."""
    if not re.fullmatch(BROADCAST_ID_PATTERN, name) or len(name) > SCHEDULE_NAME_MAX:
        raise InvalidBroadcast(
            f"a recurring broadcast's name is 1 to {SCHEDULE_NAME_MAX} characters of a-z, 0-9, _ . - "
            "(its runs append their time)",
            field="name",
        )


class BroadcastSchedules:
    def __init__(self, client: Client, broadcasts: Broadcasts, *, task_queue: str) -> None:
        self._client = client
        self._broadcasts = broadcasts
        self._task_queue = task_queue

    async def create(
        self, name: str, *, cron: str, time_zone: str = "UTC", body: BroadcastCreate, by: str
    ) -> ScheduleView:
        """Schedule ``body`` on ``cron`` (five fields, in ``time_zone``). Raises ``InvalidBroadcast``
        (the name, the cron, the zone or the broadcast itself) or ``ScheduleExists``."""
        check_name(name)
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise InvalidBroadcast(f"unknown time zone {time_zone!r}", field="time_zone") from exc
        await self._broadcasts.check(body, recurring=True)
        spec = spec_of(body, name)
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                Broadcast.run,
                spec,
                id=broadcast_workflow_id(name),
                task_queue=self._task_queue,
                memo=memo_of(spec, by=by),
                static_summary=f"Broadcast {spec.template} to audience {spec.audience} ({name}, {cron})",
            ),
            spec=ScheduleSpec(cron_expressions=[cron], time_zone_name=time_zone),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
        )
        memo = {"cron": cron, "time_zone": time_zone, "audience": spec.audience, "template": spec.template}
        try:
            await self._client.create_schedule(schedule_id(name), schedule, memo=memo)
        except ScheduleAlreadyRunningError as exc:
            raise ScheduleExists(f"a recurring broadcast named {name!r} exists already") from exc
        except RPCError as exc:
            if exc.status is RPCStatusCode.INVALID_ARGUMENT:
                raise InvalidBroadcast(f"Temporal refused the schedule: {exc.message}", field="cron") from exc
            raise
        return await self.view(name)

    async def view(self, name: str) -> ScheduleView:
        """Raises ``UnknownSchedule``."""
        handle = self._client.get_schedule_handle(schedule_id(name))
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise UnknownSchedule(f"no recurring broadcast named {name!r}") from exc
            raise
        return _view(
            name,
            await description.memo(),
            paused=description.schedule.state.paused,
            next_runs=description.info.next_action_times,
            recent=[getattr(a.action, "workflow_id", "") for a in description.info.recent_actions],
        )

    async def every(self) -> list[ScheduleView]:
        """Every recurring broadcast, by name."""
        views = []
        async for entry in await self._client.list_schedules():
            if not entry.id.startswith(SCHEDULE_PREFIX):
                continue
            views.append(
                _view(
                    entry.id.removeprefix(SCHEDULE_PREFIX),
                    await entry.memo(),
                    paused=bool(entry.schedule and entry.schedule.state.paused),
                    next_runs=entry.info.next_action_times if entry.info else [],
                    recent=[getattr(a.action, "workflow_id", "") for a in entry.info.recent_actions]
                    if entry.info
                    else [],
                )
            )
        return sorted(views, key=lambda view: view.name)

    async def delete(self, name: str) -> None:
        """Stop scheduling ``name`` (runs already started go on). Raises ``UnknownSchedule``."""
        try:
            await self._client.get_schedule_handle(schedule_id(name)).delete()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise UnknownSchedule(f"no recurring broadcast named {name!r}") from exc
            raise


def _view(
    name: str, memo: Mapping[str, Any], *, paused: bool, next_runs: Sequence[datetime], recent: list[str]
) -> ScheduleView:
    runs = [run_broadcast_id(name, workflow_id, scheduled=True) for workflow_id in recent]
    return ScheduleView(
        name=name,
        schedule_id=schedule_id(name),
        cron=memo.get("cron", ""),
        time_zone=memo.get("time_zone", "UTC"),
        audience=memo.get("audience"),
        template=memo.get("template"),
        paused=paused,
        next_runs=list(next_runs),
        recent=[run for run in runs if run],
    )
