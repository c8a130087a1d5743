"""Which broadcast a run is: its own id, or, for a run a Temporal Schedule started, the
schedule's id with the run's scheduled time.

A schedule starts every run with the workflow id of its action plus ``-<scheduled time>``
(RFC 3339 in UTC, to the second: ``broadcast:weekly-2026-11-30T10:00:00Z``). Idempotency keys are
(broadcast id, customer id), so each run needs a broadcast id of its own, or the second week's
run would find every message already sent: the run's id is derived from its workflow id,
``weekly-20261130-100000``, the same on every replay and attempt. These are wire values.

A run started by hand under a workflow id of another shape (a replay harness names a history by
its file) is the broadcast its spec names.
"""

from __future__ import annotations

import re

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from nudge.broadcasts import BROADCAST_ID_PATTERN, broadcast_workflow_id

SCHEDULED_BY = SearchAttributeKey.for_keyword("TemporalScheduledById")
"""Set by Temporal on every run a schedule starts: the schedule's id."""

SCHEDULED_SUFFIX = re.compile(r"-(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z")
"""What a Temporal Schedule appends to its action's workflow id."""
RUN_SUFFIX_LENGTH = len("-20261130-100000")
SCHEDULE_NAME_MAX = 80 - RUN_SUFFIX_LENGTH
"""The longest name a recurring broadcast may have: its runs' ids still fit the pattern (80)."""


def run_broadcast_id(broadcast_id: str, workflow_id: str, *, scheduled: bool) -> str | None:
    """The broadcast id of the run with ``workflow_id`` whose spec names ``broadcast_id``.

    ``broadcast_id-YYYYMMDD-HHMMSS`` for a run a schedule started at that time (its workflow id is
    the broadcast's own with the time appended); otherwise ``broadcast_id`` itself, unless a
    schedule started the run (``scheduled``: Temporal's ``TemporalScheduledById``) under an id of
    another shape: None then, and the run must not send, or every run of that schedule would share
    one broadcast's idempotency keys.
    """
    own = broadcast_workflow_id(broadcast_id)
    suffix = SCHEDULED_SUFFIX.fullmatch(workflow_id[len(own) :]) if workflow_id.startswith(own) else None
    if suffix is None:
        return None if scheduled else broadcast_id
    year, month, day, hour, minute, second = suffix.groups()
    derived = f"{broadcast_id}-{year}{month}{day}-{hour}{minute}{second}"
    return derived if re.fullmatch(BROADCAST_ID_PATTERN, derived) else None
