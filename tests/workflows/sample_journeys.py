"""Journeys used only by tests (kept in their own module so the sandbox can import them)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.journey import Journey

with workflow.unsafe.imports_passed_through():
    from nudge.models import Event


class WaitsForUndeclared(Journey):
    trigger = "test_started"

    async def steps(self, event: Event) -> None:
        await self.wait_for("never_declared", timeout=timedelta(hours=1))
