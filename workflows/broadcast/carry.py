"""What one run of a broadcast hands the next across continue-as-new.

Only the figures and where the sweep stands: the progress, the pass and its cursor (every batch up
to it has finished, since a run continues as new only once none is in flight), the window, and
the times it waits for. The next run pages on from the cursor. A wire value (recorded histories
hold it): a field added later needs a default.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from nudge.broadcasts import Progress


class Carry(BaseModel):
    progress: Progress
    deadline: datetime
    pass_now: datetime | None = None
    """The time the current later pass stamps its due rows with (kept, so that its pages after a
    continue-as-new stamp the same rows)."""
    cursor: str | None = None
    """The last customer id of the last batch started in the current pass."""
    clean: int = 0
    """Clean batch reports since the window last changed."""
    paused: bool = False
    samples: list[tuple[datetime, int]] = Field(default_factory=list)
    """The last batches' completion times and recipients, for the rate."""
    counted_at: datetime | None = None
    """When the store was last asked for the delivered count."""
    runs: int = 1
    """Runs so far, this one included."""
