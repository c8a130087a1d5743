"""Timeouts and retry policies of the activities a journey calls."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from nudge.contracts import PERMANENT_ERRORS, error_type

SEND_TIMEOUT = timedelta(seconds=30)
"""One attempt of ``send_message``: the gate, and one provider call per route tried."""
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=20,
    non_retryable_error_types=[error_type(error) for error in PERMANENT_ERRORS],
)
PROFILE_TIMEOUT = timedelta(seconds=5)
READ_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=10,
)
