"""A broadcast batch's dispatch: the recipients that passed the gate, by route, in batch calls.

Recipients whose rules pick the same routes go together; each route is tried in its order by the
walk the journey's dispatch takes too (``activities/send/walk.py``): one whose signature is not
approved or that is paused (marketing) is skipped for the recipients it concerns, one whose
breaker is open for all. On a route, the messages of one template go out in calls of the
provider's batch size (Aliyun SendBatchSms 100, Tencent SendSms 200, concurrent single sends where
there is no batch API), each call claimed on the rows first under one reference (the call's first
message id), so that a lost answer is looked up number by number before anything is sent again.

Throttling (the provider refused the call for its rate, never processed) is waited out here, with
backoff, and the seconds it cost are reported: the workflow narrows its window on them. Numbers
an account error refused go on to the next route; the rest of the provider's answers are
recorded as the journey's are (deferred, refused for good, failed retryably).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import httpx
from temporalio import activity

from activities.providers.base import BatchOutcome, Submission
from activities.routing import NoRoute, Route
from activities.send.compose import Composer, price, recipient
from activities.send.dispatch import Timed, never_reached
from activities.send.gate import Attempt
from activities.send.outcome import DEFERRED, NO_ROUTE, NOT_SENT, SIGNATURE_NOT_APPROVED
from activities.send.refusal import Refusals
from activities.send.walk import Rider, RouteWalk
from nudge.errors import (
    AccountProviderError,
    DeferredProviderError,
    PermanentProviderError,
    RetryableProviderError,
)
from nudge.logging import get_logger
from nudge.metrics import SENDS
from nudge.models import Category
from nudge.store import Message

from .gate import PAUSE_RECHECK
from .rows import BatchRows, Decision

log = get_logger(__name__)

THROTTLE_ROUNDS = 6
"""Throttled calls are sent again up to this many times (0.25 s, doubling) before the batch
gives up and its activity's retry takes over."""


class BatchDispatcher:
    def __init__(
        self,
        *,
        walk: RouteWalk,
        composer: Composer,
        rows: BatchRows,
        refusals: Refusals,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._walk = walk
        self._composer = composer
        self._rows = rows
        self._refusals = refusals
        self._clock = clock
        self._sleep = sleep

    async def dispatch(
        self,
        attempts: Sequence[Attempt],
        *,
        category: Category,
        forced: str | None,
        wait: Callable[[Decision], Decision],
    ) -> float:
        """Send every attempt on its best usable route; the seconds spent on throttling."""
        groups: dict[tuple[str, ...], tuple[list[Route], list[Rider]]] = {}
        no_route: list[Decision] = []
        for attempt in attempts:
            to = recipient(attempt.message.to or "", attempt.standing.customer)
            try:
                candidates = self._walk.candidates(to, attempt.template, category, forced=forced)
            except NoRoute as exc:
                no_route.append(Decision(attempt.message, f"{NO_ROUTE}{exc}"))
                continue
            rider = Rider(attempt.request, attempt.message, attempt.template, to.language)
            groups.setdefault(tuple(r.name for r in candidates), (candidates, []))[1].append(rider)
        await self._rows.decide(no_route)
        throttled = 0.0
        for routes, riders in groups.values():
            remaining = riders
            for route in routes:
                if not remaining:
                    break
                ready, remaining = await self._walk.board(route, remaining)
                if ready:
                    refused, waited = await self._send_on(route, ready, wait)
                    throttled += waited
                    remaining += refused
            await self._unsent(remaining, wait)
        return throttled

    async def _unsent(self, riders: list[Rider], wait: Callable[[Decision], Decision]) -> None:
        """Recipients no route took: refused (no approved signature), waiting (paused), or left
        pending for the activity's retry (breakers open, account errors)."""
        decisions, left = [], []
        for rider in riders:
            message = rider.message
            if not rider.any_approved:
                name = rider.request.signature or message.signature or "?"
                decisions.append(Decision(message, f"{SIGNATURE_NOT_APPROVED}{name}"))
            elif rider.held:
                decisions.append(wait(Decision(message, f"{DEFERRED}paused", self._clock() + PAUSE_RECHECK)))
            else:
                left.append(message)
        await self._rows.decide(decisions)
        await self._rows.mark(left, f"{NOT_SENT}no_route_available")

    async def _send_on(
        self, route: Route, riders: list[Rider], wait: Callable[[Decision], Decision]
    ) -> tuple[list[Rider], float]:
        """Send on ``route`` in batch calls; the recipients an account error refused (for the
        next route), and the seconds spent waiting out throttling."""
        by_template: dict[str | None, list[Rider]] = {}
        for rider in riders:
            code = rider.template.provider_codes.get(route.config.provider)
            by_template.setdefault(code, []).append(rider)
        refused: list[Rider] = []
        waited = 0.0
        size = max(1, route.provider.batch_limit)
        for group in by_template.values():
            for start in range(0, len(group), size):
                todo = group[start : start + size]
                for round_no in range(THROTTLE_ROUNDS + 1):
                    throttled, account = await self._call(route, todo, wait)
                    refused += account
                    if not throttled:
                        break
                    if round_no == THROTTLE_ROUNDS:
                        await self._rows.mark([r.message for r in throttled], f"{NOT_SENT}throttled")
                        break
                    delay = min(8.0, 0.25 * 2**round_no)
                    await self._sleep(delay)
                    waited += delay
                    todo = throttled
                if activity.in_activity():
                    activity.heartbeat()
        return refused, waited

    async def _call(
        self, route: Route, riders: list[Rider], wait: Callable[[Decision], Decision]
    ) -> tuple[list[Rider], list[Rider]]:
        """One batch call: the throttled recipients (to send again) and those an account error
        refused (for the next route); everything else is recorded."""
        ref = riders[0].message.id
        claims = []
        for rider in riders:
            message, name = rider.message, rider.signatures[route.name]
            price(message, route, name)
            message.batch_ref = ref
            claims.append((message, route, name, ref))
        await self._rows.claim(claims)
        outbound = [self._composer.outbound(r.message, route, r.template) for r in riders]
        # The route's rate counts requests: a batch call of a hundred numbers is one.
        await route.limiter.acquire(count=route.provider.requests(outbound))
        timed = Timed(route)
        try:
            outcomes: list[BatchOutcome] = await route.provider.send_batch(outbound)
        except httpx.HTTPError as exc:
            timed.done("error")
            route.breaker.record_failure(type(exc).__name__)
            if never_reached(exc):
                await self._rows.mark([r.message for r in riders], f"{NOT_SENT}{type(exc).__name__}")
            # Otherwise ambiguous: the rows stay claimed, and the retry looks each number up.
            log.warning(
                "broadcast_call_failed", route=route.name, error=type(exc).__name__, messages=len(riders)
            )
            return [], []
        timed.done("answered")
        sent: list[tuple[Message, Route, Submission]] = []
        throttled, account, deferred, retry_marks = [], [], [], []
        for rider, outcome in zip(riders, outcomes, strict=True):
            message = rider.message
            if isinstance(outcome, Submission):
                sent.append((message, route, outcome))
            elif isinstance(outcome, AccountProviderError):
                route.breaker.trip(f"{outcome.code}: {outcome}")
                account.append(rider)
            elif isinstance(outcome, DeferredProviderError):
                deferred.append(wait(Decision(message, f"{DEFERRED}{outcome.code}", outcome.retry_at)))
            elif isinstance(outcome, PermanentProviderError):
                await self._refusals.record(message, outcome)
            elif isinstance(outcome, RetryableProviderError) and outcome.throttled:
                throttled.append(rider)
            elif isinstance(outcome, RetryableProviderError):
                route.breaker.record_failure(outcome.code)
                if not outcome.ambiguous:
                    retry_marks.append(message)
        if sent:
            route.breaker.record_success()
        await self._rows.submitted(sent)
        await self._rows.decide(deferred)
        await self._rows.mark(retry_marks, f"{NOT_SENT}retryable")
        SENDS.labels(route.provider.name, route.name, riders[0].message.category).inc(len(sent))
        log.info(
            "broadcast_batch_sent",
            route=route.name,
            messages=len(riders),
            accepted=len(sent),
            throttled=len(throttled),
            refused_account=len(account),
            deferred=len(deferred),
        )
        return throttled, account
