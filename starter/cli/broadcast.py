"""``nudge broadcast ...``: start, schedule, control and watch broadcasts, talking to Temporal
directly (as ``nudge journeys`` does) through the same service as ``/v1/broadcasts``.

``start`` checks the audience, the template and the route in the store first; ``pause``,
``resume`` and ``cancel`` go through the broadcast's updates and print the progress they answer
once they took effect; ``watch`` polls the progress query under a live bar with rate and ETA.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from typer.core import TyperGroup

from nudge.broadcasts import WAITING, Outcome
from nudge.broadcasts import Progress as BroadcastProgress
from starter.api.services.broadcast_models import BroadcastView
from starter.api.services.broadcast_schedules import ScheduleView
from starter.api.services.broadcasts import Broadcasts
from starter.cli.broadcast_input import (
    AudienceOpt,
    BatchOpt,
    LocalOpt,
    ParamOpt,
    RateOpt,
    RouteOpt,
    TemplateOpt,
    WindowOpt,
    body_of,
    parse_params,
    parse_rate,
    parse_time,
    run,
)
from starter.cli.common import console, fail, print_workflows
from starter.cli.pauses import who
from workflows.broadcast.tally import remaining_time
from workflows.humanize import human

broadcast_app = typer.Typer(help="Send one template to a whole audience (群发).", no_args_is_help=True)


@broadcast_app.command()
def start(
    audience: AudienceOpt,
    template: TemplateOpt,
    route: RouteOpt = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Start then (ISO 8601, or +2h) instead of now.")
    ] = None,
    local_time: LocalOpt = None,
    rate: RateOpt = None,
    deadline: Annotated[
        str | None,
        typer.Option("--deadline", help="Deferred recipients still waiting then expire \\[default: +48h]."),
    ] = None,
    broadcast_id: Annotated[
        str | None, typer.Option("--id", help="Its id \\[default: <template>-<time>].")
    ] = None,
    param: ParamOpt = None,
    batch_size: BatchOpt = 100,
    window: WindowOpt = 8,
) -> None:
    """Start a broadcast: every customer of the audience gets the template once, through the gate."""
    body = body_of(
        broadcast_id=broadcast_id,
        audience=audience,
        template=template,
        route=route,
        start_at=parse_time(at, option="--at"),
        deadline=parse_time(deadline, option="--deadline"),
        local_time=local_time,
        rate=parse_rate(rate),
        params=parse_params(param or []),
        batch_size=batch_size,
        window=window,
    )
    view = run(lambda broadcasts, _: broadcasts.start(body, by=f"cli ({who(None)})"))
    console.print(f"broadcast {view.broadcast_id} started: {template} to audience {audience}")
    console.print(f"workflow {view.workflow_id}; follow it with: nudge broadcast watch {view.broadcast_id}")


class ScheduleGroup(TyperGroup):
    """``schedule NAME ...`` creates; ``schedule list`` and ``schedule delete NAME`` are commands."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args.insert(0, "create")
        return super().resolve_command(ctx, args)


schedule_app = typer.Typer(
    cls=ScheduleGroup, help="Recurring broadcasts on Temporal Schedules.", no_args_is_help=True
)
broadcast_app.add_typer(schedule_app, name="schedule")


@schedule_app.command("create")
def schedule_create(
    name: Annotated[str, typer.Argument(help="Its name; each run is the broadcast <name>-<date>-<time>.")],
    cron: Annotated[str, typer.Option("--cron", help="When, as cron: '0 10 * * 1' is Mondays at 10:00.")],
    audience: AudienceOpt,
    template: TemplateOpt,
    time_zone: Annotated[str, typer.Option("--time-zone", help="The cron's zone.")] = "UTC",
    route: RouteOpt = None,
    local_time: LocalOpt = None,
    rate: RateOpt = None,
    param: ParamOpt = None,
    batch_size: BatchOpt = 100,
    window: WindowOpt = 8,
) -> None:
    """Broadcast on a schedule (shown on the Temporal UI's Schedules page)."""
    body = body_of(
        audience=audience,
        template=template,
        route=route,
        local_time=local_time,
        rate=parse_rate(rate),
        params=parse_params(param or []),
        batch_size=batch_size,
        window=window,
    )
    by = f"cli ({who(None)})"
    view = run(lambda _, schedules: schedules.create(name, cron=cron, time_zone=time_zone, body=body, by=by))
    show_schedules([view])


@schedule_app.command("list")
def schedule_list() -> None:
    """Every recurring broadcast, its next runs and its latest."""
    views = run(lambda _, schedules: schedules.every())
    if not views:
        console.print("no recurring broadcasts")
    show_schedules(views)


@schedule_app.command("delete")
def schedule_delete(name: Annotated[str, typer.Argument(help="The recurring broadcast's name.")]) -> None:
    """Stop scheduling it (runs already started go on)."""
    run(lambda _, schedules: schedules.delete(name))
    console.print(f"recurring broadcast {name} deleted")


def show_schedules(views: list[ScheduleView]) -> None:
    rows = [
        (
            view.schedule_id,
            f"{view.cron} ({view.time_zone})" + (" paused" if view.paused else ""),
            f"{view.template} to {view.audience}",
            "\n".join(f"{t:%Y-%m-%d %H:%M} UTC" for t in view.next_runs[:3]) or "-",
            "\n".join(view.recent[-3:]) or "-",
        )
        for view in views
    ]
    print_workflows(("schedule id", "when", "what", "next runs", "latest runs"), rows, wrap=("what",))


IdArg = Annotated[str, typer.Argument(help="The broadcast's id.")]


@broadcast_app.command()
def pause(broadcast_id: IdArg) -> None:
    """No new batch starts; answers once the batches in flight have finished."""
    show_progress(run(lambda broadcasts, _: broadcasts.pause(broadcast_id)))


@broadcast_app.command()
def resume(broadcast_id: IdArg) -> None:
    """Send again."""
    show_progress(run(lambda broadcasts, _: broadcasts.resume(broadcast_id)))


@broadcast_app.command()
def cancel(broadcast_id: IdArg) -> None:
    """Stop for good: waits for the batches in flight, then whoever still waits expires."""
    show_progress(run(lambda broadcasts, _: broadcasts.cancel(broadcast_id)))


@broadcast_app.command()
def status(broadcast_id: IdArg) -> None:
    """Where the broadcast is: its counters, rate and state."""
    view = run(lambda broadcasts, _: broadcasts.view(broadcast_id))
    console.print(f"workflow {view.workflow_id} ({view.status})", highlight=False)
    if view.failure:
        console.print(f"failure: {view.failure}", highlight=False)
    if view.progress is None:
        raise fail("no worker answered the progress query (is `nudge worker` up?)")
    show_progress(view.progress)


def show_progress(progress: BroadcastProgress) -> None:
    lines = [f"broadcast {progress.broadcast_id}: {progress.state.value}"]
    lines.append(f"  processed {progress.processed:,} of {progress.total:,}")
    lines += [
        f"  {o.value.replace('_', ' ')} {progress.counts[o]:,}" for o in Outcome if progress.counts.get(o)
    ]
    lines.append(f"  delivered {progress.delivered:,}")
    if progress.rate:
        lines.append(f"  rate {progress.rate:,.1f}/s, window {progress.window}")
    if progress.next_due and any(progress.counts.get(o) for o in WAITING):
        lines.append(f"  next pass {progress.next_due:%Y-%m-%d %H:%M %Z}")
    console.print("\n".join(lines), highlight=False)


@broadcast_app.command("list")
def list_broadcasts(limit: Annotated[int, typer.Option(min=1, max=200)] = 50) -> None:
    """The latest broadcasts, newest first."""
    views = run(lambda broadcasts, _: broadcasts.latest(limit=limit))
    if not views:
        console.print("no broadcasts")
        raise typer.Exit(0)
    rows = [
        (
            v.workflow_id,
            v.broadcast_id,
            v.progress.state.value if v.progress else v.status,
            f"{v.progress.processed:,}/{v.progress.total:,}" if v.progress else "-",
            f"{v.progress.counts.get(Outcome.SENT, 0):,}" if v.progress else "-",
            f"{v.template} to {v.audience}",
        )
        for v in views
    ]
    print_workflows(("workflow id", "broadcast", "state", "processed", "sent", "what"), rows, wrap=("what",))


@broadcast_app.command()
def watch(
    broadcast_id: IdArg,
    every: Annotated[float, typer.Option("--every", min=0.1, help="Seconds between polls.")] = 1.0,
) -> None:
    """A live bar of the broadcast's progress, with its rate and ETA; ends when it does."""
    final = run(lambda broadcasts, _: follow(broadcasts, broadcast_id, every))
    if final.progress is not None:
        show_progress(final.progress)
    if final.status not in ("running", "completed"):
        raise fail(f"broadcast {broadcast_id} {final.status}: {final.failure or ''}".rstrip(": "))


async def follow(broadcasts: Broadcasts, broadcast_id: str, every: float) -> BroadcastView:
    """Poll the progress under a live bar until the broadcast is done, cancelled or closed."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[eta]}"),
        TextColumn("{task.fields[counts]}"),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(broadcast_id, total=None, rate="", eta="", counts="")
        while True:
            view = await broadcasts.view(broadcast_id)
            if (progress := view.progress) is not None:
                eta = remaining_time(progress)
                waiting = sum(progress.counts.get(o, 0) for o in WAITING)
                bar.update(
                    task,
                    description=f"{broadcast_id} {progress.state.value}",
                    total=progress.total or None,
                    completed=progress.processed,
                    rate=f"{progress.rate:,.0f}/s",
                    eta=f"ETA {human(eta)}" if eta else "",
                    counts=f"sent {progress.counts.get(Outcome.SENT, 0):,}, waiting {waiting:,}",
                )
                if progress.state.value in ("done", "cancelled"):
                    return view
            if view.status != "running":
                return view
            await asyncio.sleep(every)
