"""What ``nudge broadcast`` commands share: reading their options (times, rates, template
variables) into a ``BroadcastCreate``, and running a command against the broadcast services over
this machine's settings (Temporal and the store), a refusal exiting 2 with its reason."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, TypeVar

import typer

from nudge.errors import ConfigurationError, InvalidInput
from starter.api.services.broadcast_models import BroadcastCreate
from starter.api.services.broadcast_schedules import BroadcastSchedules
from starter.api.services.broadcasts import Broadcasts
from starter.cli.common import fail, settings_now

T = TypeVar("T")
RELATIVE = re.compile(r"^\+(\d+)\s*(m|min|h|d)$")
RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:/\s*(s|m|min|h))?$")


def parse_time(text: str | None, *, option: str) -> datetime | None:
    """ISO 8601 (a time without a zone is this machine's), or ``+30m``, ``+2h``, ``+1d`` from now."""
    if text is None:
        return None
    if relative := RELATIVE.match(text.strip()):
        amount, unit = int(relative[1]), relative[2]
        minutes = {"m": 1, "min": 1, "h": 60, "d": 1440}[unit] * amount
        return datetime.now(UTC) + timedelta(minutes=minutes)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise fail(f"{option}: {text!r} is not a time (2026-12-01T10:00+08:00, or +2h)", code=2) from None
    return moment if moment.tzinfo else moment.astimezone()


def parse_rate(text: str | None) -> float | None:
    """``500/s``, ``500`` (per second), ``3000/min``, ``10000/h``: recipients per second."""
    if text is None:
        return None
    found = RATE.match(text.strip())
    if not found or float(found[1]) <= 0:
        raise fail(f"--rate: {text!r} is not a rate (500/s, 3000/min)", code=2)
    return float(found[1]) / {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600}[found[2]]


def parse_params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"--param: {pair!r} is not key=value", code=2)
        params[key] = value
    return params


@asynccontextmanager
async def services() -> Any:
    """The broadcast services over this machine's settings: Temporal and the store."""
    from activities.compliance.registry import Registry
    from nudge.store import create_engine, session_factory
    from nudge.temporal import connect
    from workflows.journeys import seeded_templates

    settings = settings_now()
    client = await connect(settings)
    engine = create_engine(settings.sqlalchemy_url)
    sessions = session_factory(engine)
    registry = Registry(sessions, builtins=seeded_templates(), routes=settings.effective_routes)
    routes = [route.name for route in settings.effective_routes]
    broadcasts = Broadcasts(
        client, sessions=sessions, registry=registry, task_queue=settings.task_queue, routes=routes
    )
    try:
        yield broadcasts, BroadcastSchedules(client, broadcasts, task_queue=settings.task_queue)
    finally:
        await engine.dispose()


def run(work: Callable[[Broadcasts, BroadcastSchedules], Awaitable[T]]) -> T:
    """Run ``work`` against the services; a refusal exits 2 with its reason, no Temporal exits 1."""

    async def main() -> T:
        async with services() as (broadcasts, schedules):
            return await work(broadcasts, schedules)

    try:
        return asyncio.run(main())
    except InvalidInput as exc:
        raise fail(str(exc), code=2) from exc
    except ConfigurationError as exc:
        raise fail(str(exc)) from exc
    except RuntimeError as exc:  # the SDK's "failed client connect"
        raise fail(f"cannot reach Temporal at {settings_now().temporal_address}: {exc}") from exc


AudienceOpt = Annotated[str, typer.Option("--audience", help="The audience's name (nudge audiences list).")]
TemplateOpt = Annotated[str, typer.Option("--template", help="The template's code (nudge templates list).")]
RouteOpt = Annotated[str | None, typer.Option("--route", help="Send on this route only (no failover).")]
LocalOpt = Annotated[
    str | None,
    typer.Option("--local-time", help="Deliver at this hour in each recipient's zone, e.g. 10:00."),
]
RateOpt = Annotated[str | None, typer.Option("--rate", help="At most this many recipients, e.g. 500/s.")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", help="A template variable, key=value (repeat).")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, max=1000, help="Recipients per batch.")]
WindowOpt = Annotated[int, typer.Option("--window", min=1, max=64, help="Batches in flight at most.")]


def body_of(**options: Any) -> BroadcastCreate:
    local = options.pop("local_time")
    try:
        at = time.fromisoformat(local) if local else None
    except ValueError:
        raise fail(f"--local-time: {local!r} is not a time of day (10:00)", code=2) from None
    try:
        return BroadcastCreate(local_time=at, **options)
    except ValueError as exc:  # pydantic's, one line per field
        raise fail(str(exc).replace("\n", "; "), code=2) from None
