"""A broadcast's bounds: timeouts, retries, how often it counts, and when it continues as new.

History bound: a run continues as new once its history holds ``HISTORY_BOUND`` events (or the
server suggests it, from 4 MiB), after the batches in flight have finished. A batch costs about
three events of its own (scheduled, started, completed) plus its share of workflow tasks (three
each, shared by the batches that finish together) and, with ``--rate``, a timer's two: four to
eight events. So a run holds about 2,000 events plus the draining window (at most 64 batches),
under 2,600: well inside the server's 51,200 limit and its 4,096 suggestion, and a replay of a
run (a worker restart) stays quick. With 100 recipients a batch, that is some 25,000 to 50,000
recipients a run; a million take 20 to 40 runs, each carrying only the progress and a cursor.
Measured against in-memory activities: 20,000 recipients in batches of 100 took 940 events (4.7 a
batch, 47 per 1,000 recipients), so a run covers about 42,000.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from nudge.contracts import PERMANENT_ERRORS, error_type
    from nudge.errors import NotFound

HISTORY_BOUND = 2_000
"""Events in a run's history before it continues as new (see above)."""
DEFAULT_DEADLINE = timedelta(hours=48)
"""How long deferred recipients may wait after the start, when the broadcast names no deadline."""
WAITING_POLL = timedelta(minutes=30)
"""How long to wait for another pass when recipients wait and nothing said until when."""
COUNT_EVERY = timedelta(seconds=30)
"""How often a running broadcast asks the store for its delivered messages (never per batch)."""

PERMANENT = [error_type(error) for error in (*PERMANENT_ERRORS, NotFound)]
"""Errors no retry cures: an unknown audience or template, a template that does not render."""

PAGE_TIMEOUT = timedelta(minutes=2)
"""One page of bounds; a later pass's first page also stamps every row then due."""
BATCH_TIMEOUT = timedelta(minutes=5)
"""One batch: the gate for up to 1,000 recipients and the providers' calls, throttling included."""
BATCH_HEARTBEAT = timedelta(seconds=30)
"""A batch heartbeats between its steps and calls: a killed worker's batch is retried after this,
not after ``BATCH_TIMEOUT``."""
STORE_TIMEOUT = timedelta(minutes=2)
"""Counting the audience (about a second for a million on PostgreSQL), expiring the waiting."""

STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=10,
    non_retryable_error_types=PERMANENT,
)
BATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=30,
    non_retryable_error_types=PERMANENT,
)
"""A batch is idempotent per recipient, so it is retried for about half an hour (a database or a
provider away for a while) before the broadcast gives up."""
