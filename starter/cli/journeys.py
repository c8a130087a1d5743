"""``nudge journeys``: a customer's journeys, read from Temporal.

Each journey is named as ``nudge event`` names it (``cart_abandonment``, not the workflow type),
its workflow id is printed whole, and a finished one shows its outcome with the reason.
"""

from __future__ import annotations

import asyncio
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from nudge.contracts import SA_JOURNEY, SA_OUTCOME, SA_STEP, STATE
from nudge.errors import ConfigurationError
from nudge.settings import Settings
from starter.cli.common import console, err, fail, print_workflows, settings_now

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker
    from sqlmodel.ext.asyncio.session import AsyncSession
    from temporalio.client import Client, WorkflowExecution

    from nudge.models import JourneyResult, JourneyState, SentMessage

HEADERS = ("workflow id", "journey", "status", "step", "detail", "messages", "started")


@dataclass(frozen=True)
class JourneyRow:
    """One journey as ops read it, in the order of ``HEADERS``."""

    workflow_id: str
    journey: str
    status: str
    step: str
    detail: str
    messages: str
    started: str


def ending(result: JourneyResult) -> str:
    """The step a finished journey ends on, with its reason: ``done:exited (opted_out)``."""
    return f"done:{result.outcome}" + (f" ({result.reason})" if result.reason else "")


def describe(message: SentMessage) -> str:
    """``template: decision``, with the reason, the receipt status and the route."""
    text = f"{message.template}: {message.decision.value}"
    details = [d for d in (message.reason, message.status and message.status.value, message.route) if d]
    if message.clicked:
        details.append("clicked")
    return text + (f" ({', '.join(details)})" if details else "")


def journey_row(
    execution: WorkflowExecution,
    state: JourneyState | None,
    result: JourneyResult | None,
    waiting: str = "",
) -> JourneyRow:
    """The row for one execution, from its search attributes and its state (running) or result."""
    attrs = execution.typed_search_attributes
    step = attrs.get(SA_STEP) or ""
    if result is not None:
        step = ending(result)
    elif outcome := attrs.get(SA_OUTCOME):  # finished, but its result could not be read
        step = f"done:{outcome}"
    messages = result.messages if result is not None else state.messages if state is not None else []
    return JourneyRow(
        workflow_id=execution.id,
        journey=attrs.get(SA_JOURNEY) or execution.workflow_type,
        status=execution.status.name.lower() if execution.status else "?",
        step=step,
        detail="\n".join(d for d in (state.detail if state is not None else "", waiting) if d),
        messages="\n".join(describe(m) for m in messages) or "-",
        started=f"{execution.start_time:%Y-%m-%d %H:%M:%S}",
    )


async def fetch(
    client: Client, customer: str, sessions: async_sessionmaker[AsyncSession] | None = None
) -> list[JourneyRow]:
    """Every journey of the customer: a running one's state by query, a completed one's result,
    and (from the store) what a send still pending waits for."""
    from nudge.models import JourneyResult

    waits = await waiting_sends(sessions, customer) if sessions is not None else {}

    escaped = customer.replace("'", "\\'")
    rows = []
    async for execution in client.list_workflows(f"NudgeCustomerId = '{escaped}'"):
        state, result = None, None
        waiting = (
            waits.get(execution.id, "") if execution.status and execution.status.name == "RUNNING" else ""
        )
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id, result_type=JourneyResult)
        try:
            if execution.status and execution.status.name == "RUNNING":
                state = await STATE.ask(handle)
            elif execution.status and execution.status.name == "COMPLETED":
                result = await handle.result()
        except Exception:  # noqa: BLE001 - a journey without a worker still lists
            pass
        rows.append(journey_row(execution, state, result, waiting))
    return rows


def journeys(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    temporal: Annotated[
        str | None, typer.Option(help="Temporal address \\[default: NUDGE_TEMPORAL_ADDRESS].")
    ] = None,
) -> None:
    """List a customer's journeys with their status and current step (from Temporal).

    Workflow ids are printed whole, for [bold]temporal workflow show -w ID[/]; a finished journey's
    step is its outcome with the reason, e.g. done:exited (opted_out).
    """
    settings = settings_now()
    if temporal:
        settings = settings.model_copy(update={"temporal_address": temporal})
    try:
        rows = asyncio.run(_fetch(settings, customer))
    except RuntimeError as exc:
        raise fail(f"cannot reach Temporal at {settings.temporal_address}: {exc}") from exc
    except ConfigurationError as exc:
        raise fail(str(exc)) from exc
    if not rows:
        console.print(f"no journeys for customer {customer!r}")
        raise typer.Exit(0)
    print_workflows(HEADERS, [astuple(row) for row in rows], wrap=("detail", "messages", "started"))


async def waiting_sends(sessions: async_sessionmaker[AsyncSession], customer: str) -> dict[str, str]:
    """Workflow id -> what its pending send waits for, for the customer's messages."""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import col, select

    from nudge.store import Message, read_sessions

    try:
        async with read_sessions(sessions)() as session:
            rows = await session.exec(
                select(Message.workflow_id, Message.template, Message.waiting).where(
                    Message.customer_id == customer,
                    Message.status == "pending",
                    col(Message.waiting).is_not(None),
                )
            )
            return {workflow_id: f"{template}: {waiting}" for workflow_id, template, waiting in rows.all()}
    except SQLAlchemyError as exc:
        # The journeys still list from Temporal; only the store's details are missing.
        err.print(f"warning: cannot read the message store ({type(exc).__name__}); pending sends not shown")
        return {}


async def _fetch(settings: Settings, customer: str) -> list[JourneyRow]:
    from nudge.store import create_engine, session_factory
    from nudge.temporal import connect

    client = await connect(settings)
    engine = create_engine(settings.sqlalchemy_url)
    try:
        return await fetch(client, customer, session_factory(engine))
    finally:
        await engine.dispose()
