"""The ``Broadcast`` workflow: one template to every customer of an audience, in batches, through
the same gate as a journey's sends (``nudge.broadcasts`` has the contract; ``activities/broadcast/``
does the work).

Its story: wait for ``start_at``; count the audience; pass 0 pages through it (bounds only: a
batch reads its own members) with a window of batches in flight, at ``--rate``; then, while
recipients wait (quiet hours, caps, ``--local-time``), sleep until the earliest is due and sweep
the due ones in a later pass, until nobody waits or the deadline expires the rest. Updates pause,
resume and cancel it, each answering once it took effect; the ``progress`` query and the UI's
current details say where it is. The run continues as new at ``policies.HISTORY_BOUND``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import suppress
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.broadcast import policies
from workflows.broadcast.carry import Carry
from workflows.broadcast.control import FINAL_MEMO, RUNNING, WAITING, Control
from workflows.broadcast.tally import add_expired, add_report, waiting

with workflow.unsafe.imports_passed_through():
    from nudge.broadcasts import (
        BatchReport,
        BatchRequest,
        BroadcastCounts,
        BroadcastSpec,
        BroadcastState,
        CountRequest,
        ExpireRequest,
        Page,
        PageRequest,
        Progress,
        broadcast_workflow_id,
    )
    from nudge.contracts import (
        SA_BROADCAST,
        broadcast_counts,
        broadcast_page,
        expire_broadcast,
        send_broadcast_batch,
    )


@workflow.defn(name="Broadcast")
class Broadcast(Control):
    """One broadcast: the story (``control.py`` holds its state and handlers)."""

    @workflow.run
    async def run(self, spec: BroadcastSpec, carry: Carry | None = None) -> Progress:
        if not self._own_id:
            raise ApplicationError(
                f"a schedule started workflow {workflow.info().workflow_id!r}, which is not "
                f"{broadcast_workflow_id(self._spec.broadcast_id)!r} with its time: its messages would "
                "have no idempotency keys of their own (schedule broadcasts with `nudge broadcast schedule`)",
                type="InvalidInput",
                non_retryable=True,
            )
        if workflow.info().typed_search_attributes.get(SA_BROADCAST) != self._spec.broadcast_id:
            workflow.upsert_search_attributes([SA_BROADCAST.value_set(self._spec.broadcast_id)])
        try:
            if not self._carried:
                await self._begin()
            if not self._cancelling:
                await self._sweep()
            await self._drain()
            if self._cancelling:
                await self._expire("cancelled")
            self._phase = BroadcastState.CANCELLED if self._cancelling else BroadcastState.DONE
        except ActivityError as failure:
            await self._fail(failure)
        self._progress.finished_at = workflow.now()
        with suppress(ActivityError):  # the last delivered figure; the broadcast is done either way
            await self._count()
        self._show()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._close()

    # ----- the story ------------------------------------------------------------------------

    async def _begin(self) -> None:
        """Wait for ``start_at``, then count the audience (an unknown one fails the broadcast)."""
        start_at = self._spec.start_at
        self._phase = BroadcastState.SCHEDULED
        self._show()
        if start_at is not None and start_at > workflow.now():
            with suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: self._cancelling, timeout=start_at - workflow.now(), timeout_summary="the start"
                )
        if self._cancelling:
            return
        started = workflow.now()
        self._progress.started_at = started
        self._deadline = self._spec.deadline or started + policies.DEFAULT_DEADLINE
        self._progress.total = (await self._count()).audience
        workflow.logger.info("broadcast_started", extra={"total": self._progress.total})

    async def _sweep(self) -> None:
        """Pass 0 (or the pass a continue-as-new left), then a pass whenever recipients are due."""
        await self._send_pass()
        while not self._cancelling and waiting(self._progress.counts) > 0:
            if not await self._wait_for_next_pass():
                return
            self._progress.pass_no += 1
            self._pass_now = workflow.now()
            self._cursor = None
            self._progress.next_due = None
            workflow.logger.info("broadcast_pass_started", extra={"pass_no": self._progress.pass_no})
            await self._send_pass()

    async def _wait_for_next_pass(self) -> bool:
        """Sleep until the earliest recipient is due; False when the deadline expired the rest (or a
        cancel came). A paused broadcast waits for its resume, but not past the deadline."""
        self._phase = WAITING
        self._show()
        now = workflow.now()
        wake = min(self._progress.next_due or now + policies.WAITING_POLL, self._deadline)
        if wake > now:
            with suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: self._cancelling, timeout=wake - now, timeout_summary="the next pass"
                )
        if not self._cancelling and self._paused and workflow.now() < self._deadline:
            with suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: self._cancelling or not self._paused,
                    timeout=self._deadline - workflow.now(),
                    timeout_summary="the deadline",
                )
        if self._cancelling:
            return False
        if workflow.now() >= self._deadline:
            await self._expire("deadline")
            return False
        return True

    async def _send_pass(self) -> None:
        """Page the current pass from the cursor and keep the window of batches full."""
        self._phase = RUNNING
        self._show()
        self._pacer.restart()
        bounds: deque[str] = deque()
        paged_to, paged_out = self._cursor, False
        while not self._stopping():
            if not bounds and not paged_out:  # the next page while the window still sends
                page = await self._page(after=paged_to)
                bounds.extend(page.bounds)
                paged_out = page.done or not page.bounds
                paged_to = bounds[-1] if bounds else paged_to
                self._due(page.next_due)
                continue
            if not bounds:
                break
            await workflow.wait_condition(
                lambda: self._stopping() or (not self._paused and self._in_flight < self._window.size)
            )
            if self._stopping():
                break
            if self._history_full():
                await self._continue_as_new()  # comes back only when it may not (a cancel came)
                continue
            pace = self._pacer.wait(workflow.now())
            if pace > timedelta(0):
                with suppress(asyncio.TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._stopping() or self._paused, timeout=pace, timeout_summary="--rate"
                    )
                continue
            self._start_batch(bounds.popleft())
        await self._drain()
        if self._failure is not None:
            raise self._failure

    def _start_batch(self, upto: str) -> None:
        request = BatchRequest(
            spec=self._spec,
            workflow_id=workflow.info().workflow_id,
            started_at=self._progress.started_at or workflow.now(),
            deadline=self._deadline,
            pass_no=self._progress.pass_no,
            after=self._cursor,
            upto=upto,
        )
        self._cursor = upto
        self._in_flight += 1
        self._pacer.take(self._spec.batch_size)
        self._spawn(self._batch(request, started_in=self._window.generation))

    async def _batch(self, request: BatchRequest, *, started_in: int) -> None:
        try:
            report = await workflow.execute_activity(
                send_broadcast_batch,
                request,
                start_to_close_timeout=policies.BATCH_TIMEOUT,
                heartbeat_timeout=policies.BATCH_HEARTBEAT,
                retry_policy=policies.BATCH_RETRY,
                summary=f"pass {request.pass_no}: ({request.after or 'start'}, {request.upto}]",
            )
        except ActivityError as failure:
            self._failure = self._failure or failure
            self._in_flight -= 1
            return
        try:
            self._record(report, later_pass=request.pass_no > 0, started_in=started_in)
        finally:
            self._in_flight -= 1

    def _record(self, report: BatchReport, *, later_pass: bool, started_in: int) -> None:
        add_report(self._progress.counts, report.counts, later_pass=later_pass)
        self._due(report.next_due)
        self._window.report(throttled=report.throttled > 0, started_in=started_in)
        self._samples.append((workflow.now(), report.recipients))
        counted_at = self._counted_at
        if not self._counting and (counted_at is None or workflow.now() - counted_at >= policies.COUNT_EVERY):
            self._counting = True
            self._spawn(self._count_quietly())
        self._show()

    # ----- activities -----------------------------------------------------------------------

    async def _page(self, *, after: str | None) -> Page:
        request = PageRequest(
            broadcast_id=self._spec.broadcast_id,
            audience=self._spec.audience,
            pass_no=self._progress.pass_no,
            after=after,
            batches=min(100, 2 * self._spec.window),
            batch_size=self._spec.batch_size,
            now=self._pass_now if self._progress.pass_no else None,
        )
        return await workflow.execute_activity(
            broadcast_page,
            request,
            start_to_close_timeout=policies.PAGE_TIMEOUT,
            retry_policy=policies.STORE_RETRY,
            summary=f"pass {request.pass_no}: page after {after or 'the start'}",
        )

    async def _count(self) -> BroadcastCounts:
        counts = await workflow.execute_activity(
            broadcast_counts,
            CountRequest(broadcast_id=self._spec.broadcast_id, audience=self._spec.audience),
            start_to_close_timeout=policies.STORE_TIMEOUT,
            retry_policy=policies.STORE_RETRY,
        )
        self._progress.delivered = counts.delivered
        self._counted_at = workflow.now()
        return counts

    async def _count_quietly(self) -> None:
        try:
            await self._count()
        except ActivityError as exc:  # only the delivered figure waits for the next count
            workflow.logger.warning("broadcast_count_failed", extra={"error": str(exc.cause or exc)})
        finally:
            self._counting = False

    async def _expire(self, reason: str) -> None:
        report = await workflow.execute_activity(
            expire_broadcast,
            ExpireRequest(broadcast_id=self._spec.broadcast_id, reason=reason),
            start_to_close_timeout=policies.STORE_TIMEOUT,
            retry_policy=policies.STORE_RETRY,
        )
        add_expired(self._progress.counts, report.counts)
        workflow.logger.info(
            "broadcast_expired", extra={"reason": reason, "expired": sum(report.counts.values())}
        )

    # ----- continuing and closing -----------------------------------------------------------

    async def _continue_as_new(self) -> None:
        """Hand the progress and the cursor to a fresh run, once nothing is in flight."""
        await self._drain()
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() or self._stopping())
        if self._stopping():
            return
        carry = Carry(
            progress=self._progress.model_copy(update={"state": RUNNING, "window": self._window.size}),
            deadline=self._deadline,
            pass_now=self._pass_now,
            cursor=self._cursor,
            clean=self._window.clean,
            paused=self._paused,
            samples=list(self._samples),
            counted_at=self._counted_at,
            runs=self._runs + 1,
        )
        workflow.logger.info("broadcast_continued_as_new", extra={"runs": carry.runs, "cursor": self._cursor})
        workflow.continue_as_new(args=[self._spec, carry])

    def _close(self) -> Progress:
        """The final progress, also kept in the memo: a list of broadcasts reads it there without
        fetching each closed run's history."""
        final = self._snapshot()
        workflow.upsert_memo({FINAL_MEMO: final})
        return final

    async def _fail(self, failure: ActivityError) -> None:
        """Stop for good: drain, expire whoever waits (if the store lets us), fail with the reason."""
        cause = failure.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause or failure)
        self._failed = f"{failure.activity_type} failed: {reason}"
        self._failure = self._failure or failure
        await self._drain()
        with suppress(ActivityError):
            await self._expire("failed")
        self._show()
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._close()
        raise ApplicationError(
            f"broadcast {self._spec.broadcast_id}: {self._failed}",
            type=cause.type if isinstance(cause, ApplicationError) and cause.type else "BroadcastFailed",
            non_retryable=True,
        ) from failure
