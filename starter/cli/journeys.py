"""``nudge journeys``: a customer's journeys, read from Temporal."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table

from nudge.contracts import STATE
from nudge.settings import get_settings
from starter.cli.common import console, fail


def journeys(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    temporal: Annotated[
        str | None, typer.Option(help="Temporal address \\[default: NUDGE_TEMPORAL_ADDRESS].")
    ] = None,
) -> None:
    """List a customer's journeys with their status and current step (from Temporal)."""
    from nudge.models import JourneyResult, JourneyState, SentMessage
    from nudge.temporal import connect

    settings = get_settings()
    if temporal:
        settings = settings.model_copy(update={"temporal_address": temporal})

    async def fetch() -> list[tuple[Any, JourneyState | None, list[SentMessage]]]:
        client = await connect(settings)
        escaped = customer.replace("'", "\\'")
        found = []
        async for execution in client.list_workflows(f"NudgeCustomerId = '{escaped}'"):
            state, messages = None, []
            handle = client.get_workflow_handle(
                execution.id, run_id=execution.run_id, result_type=JourneyResult
            )
            try:
                if execution.status and execution.status.name == "RUNNING":
                    state = await STATE.ask(handle)
                    messages = state.messages
                elif execution.status and execution.status.name == "COMPLETED":
                    messages = (await handle.result()).messages
            except Exception:  # noqa: BLE001 - a journey without a worker still lists
                pass
            found.append((execution, state, messages))
        return found

    def describe(message: SentMessage) -> str:
        """``template: decision``, with the reason, the receipt status and the route."""
        text = f"{message.template}: {message.decision.value}"
        details = [d for d in (message.reason, message.status and message.status.value, message.route) if d]
        if message.clicked:
            details.append("clicked")
        return text + (f" ({', '.join(details)})" if details else "")

    try:
        found = asyncio.run(fetch())
    except RuntimeError as exc:
        raise fail(f"cannot reach Temporal at {settings.temporal_address}: {exc}") from exc
    if not found:
        console.print(f"no journeys for customer {customer!r}")
        raise typer.Exit(0)
    table = Table("workflow id", "journey", "status", "step", "detail", "messages", "started")
    for execution, state, messages in found:
        attrs = execution.typed_search_attributes
        step = next((p.value for p in attrs if p.key.name == "NudgeStep"), "")
        table.add_row(
            execution.id,
            execution.workflow_type,
            execution.status.name.lower() if execution.status else "?",
            str(step),
            state.detail if state else "",
            "\n".join(describe(m) for m in messages) or "-",
            f"{execution.start_time:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)
