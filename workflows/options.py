"""How a journey is declared beyond its steps: whether a customer may enter it again, and its
tunable parameters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from temporalio import workflow

from workflows.humanize import human

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True, slots=True)
class Reentry:
    """Whether a customer may enter a journey again: ``Reentry.NEVER`` (the default),
    ``Reentry.ALWAYS``, or ``Reentry.after(timedelta(days=7))``, a cool-down since the last entry.
    A journey may also write a bare ``timedelta``; it means ``Reentry.after`` it."""

    always: bool = False
    cooldown: timedelta | None = None

    NEVER: ClassVar[Reentry]
    ALWAYS: ClassVar[Reentry]

    @classmethod
    def after(cls, cooldown: timedelta) -> Reentry:
        if cooldown <= timedelta(0):
            raise ValueError(f"a re-entry cool-down must be positive, not {cooldown}")
        return cls(cooldown=cooldown)

    def allows(self, *, since_last_entry: timedelta | None) -> bool:
        """May the customer enter again, ``since_last_entry`` after the last time (None: never did)?"""
        if self.always or since_last_entry is None:
            return True
        return self.cooldown is not None and since_last_entry >= self.cooldown

    def __str__(self) -> str:
        if self.always:
            return "always"
        return f"after {human(self.cooldown)}" if self.cooldown else "never"


Reentry.NEVER = Reentry()
Reentry.ALWAYS = Reentry(always=True)


class JourneyConfig(BaseModel):
    """A journey's tunable parameters (delays, windows). Overridden per deployment, e.g. the demo."""

    model_config = ConfigDict(frozen=True, extra="forbid")
