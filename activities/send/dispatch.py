"""Dispatch and failover: hand a message that passed the gate to its best usable route.

The candidates are the routes whose rules match the recipient, best first. A route whose signature
is not approved in the registry is skipped, and so is one whose circuit breaker is open; for
marketing, so is a route or signature paused (``nudge pause``, the complaint-rate breaker), and
when every candidate is paused the message is blocked ``paused:route=<name>``. That walk over the
candidates is ``walk.py``'s, which a broadcast's batches take too.

A route is claimed on the row before it is called, so that a retry knows where to look. Then the
provider's answer decides: accepted (submitted); refused for the account (balance, suspension: the
route's breaker trips and the next route is tried at once, which is safe because that provider
refused it); deferred by the provider; refused for good (failed); or failed retryably, where the
activity's retry comes back, after reconciling when the call may have reached the carrier.
"""

from __future__ import annotations

import time

import aiohttp
import httpx
from temporalio.exceptions import ApplicationError

from activities.compliance.pauses import PauseCache, paused_reason
from activities.compliance.registry import Registry
from activities.routing import NoRoute, Recipient, Route, Router
from nudge.errors import (
    AccountProviderError,
    DeferredProviderError,
    PermanentProviderError,
    RetryableProviderError,
)
from nudge.logging import get_logger
from nudge.metrics import PROVIDER_SECONDS, SENDS
from nudge.models import Category, SendRequest
from nudge.phone import mask
from nudge.store import Message
from nudge.templates import Template

from .compose import Composer
from .ledger import Ledger
from .outcome import NO_ROUTE, NOT_SENT, SIGNATURE_NOT_APPROVED
from .refusal import Refusals
from .walk import Rider, RouteWalk

log = get_logger(__name__)


class Dispatcher:
    def __init__(
        self,
        *,
        router: Router,
        registry: Registry,
        pauses: PauseCache,
        composer: Composer,
        ledger: Ledger,
        refusals: Refusals,
    ) -> None:
        self._walk = RouteWalk(router=router, registry=registry, pauses=pauses)
        self._refusals = refusals
        self._composer = composer
        self._ledger = ledger

    async def dispatch(
        self, request: SendRequest, message: Message, template: Template, recipient: Recipient
    ) -> Message:
        """The message's row after its route answered (or after it was blocked or deferred)."""
        try:
            candidates = self._walk.candidates(recipient, template, request.category, forced=request.route)
        except NoRoute as exc:
            return await self._ledger.block(message.id, f"{NO_ROUTE}{exc}")
        rider = Rider(request, message, template, recipient.language)
        usable = [r for r in candidates if await self._walk.approved(r, rider)]
        if not usable:
            return await self._ledger.block(
                message.id, f"{SIGNATURE_NOT_APPROVED}{rider.signatures[candidates[0].name]}"
            )
        if len(usable) < len(candidates):
            log.info(
                "routes_skipped",
                message_id=message.id,
                reason="signature_not_approved",
                routes=[r.name for r in candidates if r not in usable],
            )
        priority = request.category is Category.TRANSACTIONAL
        for route in usable:
            ready, _ = await self._walk.board(route, [rider])
            if not ready:
                continue
            if route.name != message.route or message.reason is not None:
                # Claim the route before calling it: a later attempt must know where to look.
                message = await self._ledger.claim_route(message, route, rider.signatures[route.name])
                rider.message = message
            answered = await self._call(route, message, template, priority=priority)
            if answered is not None:
                return answered
        held = rider.held
        if len(held) == len(usable):
            return await self._ledger.block(message.id, paused_reason(held[usable[0].name]))
        unavailable = ", ".join(
            f"{r.name} ({paused_reason(held[r.name]) if r.name in held else r.breaker.reason})"
            for r in usable
        )
        raise ApplicationError(
            f"every route for this message is paused: {unavailable}", type="NoRouteAvailable"
        )

    async def _call(
        self, route: Route, message: Message, template: Template, *, priority: bool
    ) -> Message | None:
        """Send on ``route``: the row after its answer, or None when the route refused the account
        (its breaker is now open and the next route may be tried). A retryable failure raises."""
        sms = self._composer.outbound(message, route, template)
        await route.limiter.acquire(priority=priority)
        timed = Timed(route)
        try:
            submission = await route.provider.send(sms)
        except AccountProviderError as exc:
            timed.done("account")
            route.breaker.trip(f"{exc.code}: {exc}")
            return None  # refused outright: the next route is safe
        except DeferredProviderError as exc:
            timed.done("deferred")
            route.breaker.record_success()
            return await self._ledger.defer(message.id, exc.code, exc.retry_at)
        except PermanentProviderError as exc:
            timed.done("refused")
            route.breaker.record_success()
            return await self._refusals.record(message, exc)
        except RetryableProviderError as exc:
            timed.done("retryable")
            route.breaker.record_failure(exc.code)
            if not exc.ambiguous:
                await self._ledger.mark(message.id, f"{NOT_SENT}{exc.code}")
            raise ApplicationError(f"{route.name} {exc.code}: {exc}", type="RetryableProviderError") from exc
        except httpx.HTTPError as exc:
            timed.done("error")
            route.breaker.record_failure(type(exc).__name__)
            if never_reached(exc):
                await self._ledger.mark(message.id, f"{NOT_SENT}{type(exc).__name__}")
                raise ApplicationError(
                    f"{route.name} unreachable ({type(exc).__name__})", type="ProviderUnreachable"
                ) from exc
            # Ambiguous: the carrier may have accepted it. The retry reconciles before resending.
            raise ApplicationError(
                f"{route.name} call failed ({type(exc).__name__}); will reconcile and retry",
                type="ProviderUnreachable",
            ) from exc
        timed.done("accepted")
        route.breaker.record_success()
        sent = await self._ledger.record_submission(message.id, route, submission)
        SENDS.labels(route.provider.name, route.name, message.category).inc()
        log.info(
            "message_sent",
            message_id=sent.id,
            journey=sent.journey,
            step=sent.step,
            template=sent.template,
            to=mask(sent.to or ""),
            route=sent.route,
            provider=sent.provider,
            segments=sent.segments,
            cost=sent.cost,
        )
        return sent


class Timed:
    """One provider request's latency, observed with its outcome."""

    def __init__(self, route: Route) -> None:
        self._route = route
        self._start = time.perf_counter()

    def done(self, outcome: str) -> None:
        PROVIDER_SECONDS.labels(self._route.provider.name, self._route.name, outcome).observe(
            time.perf_counter() - self._start
        )


def never_reached(exc: httpx.HTTPError) -> bool:
    """True only when the request cannot have reached the provider (the connection never opened).

    The aiohttp transport reports a connection dropped mid-request as ``ConnectTimeout`` too, so
    look at the aiohttp error underneath: only a failure to connect is certain.
    """
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError):
        return isinstance(cause, aiohttp.ClientConnectorError)
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
