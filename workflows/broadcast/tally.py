"""A broadcast's figures: the counts its batches report, the rate, and the same in words for the
Temporal UI. Pure and deterministic: the workflow passes the time in.

Every recipient reaches one final outcome once: pass 0 counts each recipient of the audience in
one counter, and a later pass counts the recipients it took up again (all of them waiting until
then) in the counter they end in. So a later pass's batch first takes its recipients out of the
waiting counters, then adds them where they are now. The total waiting is exact; how it splits
between ``capped`` and ``deferred`` is the latest known (a later pass takes its recipients from
``deferred`` first: quiet hours and local-time waves open before a day's cap does), and an expiry
reports its own split exactly (but for the retry of one whose answer was lost, whose rows all count
as deferred).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from temporalio import workflow

from workflows.humanize import human

with workflow.unsafe.imports_passed_through():
    from nudge.broadcasts import WAITING, BroadcastState, Outcome, Progress

RATE_SAMPLES = 20
"""Completed batches the rate is measured over."""


def waiting(counts: Mapping[Outcome, int]) -> int:
    """Recipients still waiting for their time (capped or deferred)."""
    return sum(counts.get(outcome, 0) for outcome in WAITING)


def add_report(counts: dict[Outcome, int], reported: Mapping[Outcome, int], *, later_pass: bool) -> None:
    """Add one batch's counts; a later pass's recipients leave the waiting counters first."""
    if later_pass:
        taken = sum(reported.values())
        for outcome in (Outcome.DEFERRED, Outcome.CAPPED):
            share = min(taken, counts.get(outcome, 0))
            counts[outcome] = counts.get(outcome, 0) - share
            taken -= share
    for outcome, n in reported.items():
        counts[outcome] = counts.get(outcome, 0) + n


def add_expired(counts: dict[Outcome, int], expired: Mapping[Outcome, int]) -> None:
    """The waiting recipients expired (a deadline, a cancel): nobody waits any more."""
    counts[Outcome.EXPIRED] = counts.get(Outcome.EXPIRED, 0) + sum(expired.values())
    for outcome in WAITING:
        counts[outcome] = 0


def recent_rate(samples: Sequence[tuple[datetime, int]]) -> float:
    """Recipients per second over ``samples`` (completion time, recipients), oldest first: what
    came after the first sample over the time since it."""
    if len(samples) < 2:
        return 0.0
    span = (samples[-1][0] - samples[0][0]).total_seconds()
    return (sum(n for _, n in samples) - samples[0][1]) / span if span > 0 else 0.0


def details(progress: Progress, *, deadline: datetime | None) -> str:
    """The progress as the Temporal UI's current details show it: one markdown line."""
    counts = progress.counts
    parts = [f"**{progress.state.value}**"]
    if progress.pass_no:
        parts.append(f"pass {progress.pass_no}")
    parts.append(f"{progress.processed:,} / {progress.total:,} processed")
    for outcome in Outcome:
        if counts.get(outcome):
            parts.append(f"{counts[outcome]:,} {outcome.value.replace('_', ' ')}")
    if progress.delivered:
        parts.append(f"{progress.delivered:,} delivered")
    if progress.state is BroadcastState.RUNNING:
        parts.append(f"{progress.rate:,.0f}/s" if progress.rate >= 1 else f"{progress.rate:.2f}/s")
        if (eta := remaining_time(progress)) is not None:
            parts.append(f"ETA {human(eta)}")
        parts.append(f"window {progress.window}")
    if progress.state in (BroadcastState.WAITING, BroadcastState.PAUSED) and progress.next_due:
        parts.append(f"next pass {_utc(progress.next_due)}")
    if deadline is not None and waiting(counts) and progress.state is not BroadcastState.DONE:
        parts.append(f"deadline {_utc(deadline)}")
    return " · ".join(parts)


def remaining_time(progress: Progress) -> timedelta | None:
    """How long the audience's recipients not yet processed take at the current rate."""
    left = progress.total - progress.processed - waiting(progress.counts)
    if progress.rate <= 0 or left <= 0:
        return None
    return timedelta(seconds=round(left / progress.rate))


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
