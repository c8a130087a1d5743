"""The one gate every send passes through: ``send_message``.

Order of work, so that a retry never sends twice:
1. Find the message by its idempotency key. A message the provider already accepted is returned
   as it is; nothing is sent again.
2. Otherwise render the template, pick the route, write the row as ``pending`` and commit, *then*
   call the provider.
3. A ``pending`` row left by an earlier attempt may have reached the provider (a timeout after the
   carrier accepted it, a crash before the answer was stored). Unless that attempt recorded that
   nothing was sent, ask the route it used, by our message id, before sending again.

Routing: the candidates are the routes whose rules match the recipient, best first. A route whose
circuit breaker is open is skipped, and so is one whose signature is not approved in the registry;
an account-level error (balance, suspension) pauses the route and moves the message to the next one
at once, which is safe because that provider refused it. For marketing, a route or signature paused
(``nudge pause``, the complaint-rate breaker) is skipped too; when every candidate is paused, the
message is blocked ``paused:route=<name>``.

Templates come from the registry (``nudge.registry``), in the variant for the customer's language;
only an approved template is sent, under an approved signature.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import httpx
from sqlalchemy import case
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.providers.base import OutboundSms, Submission
from activities.routing import NoRoute, Recipient, Route, Router
from nudge.caps import CAPPED, DEFAULT_CAPS, Reservation, applicable, full_cap
from nudge.complaints import ComplaintKind, ComplaintRecorder
from nudge.errors import (
    AccountProviderError,
    DeferredProviderError,
    PermanentProviderError,
    RetryableProviderError,
    TemplateError,
)
from nudge.logging import get_logger
from nudge.models import Category, FrequencyCap, MessageStatus, SendDecision, SendRequest, SendResult
from nudge.pauses import PauseCache, Scope, paused_reason
from nudge.phone import mask, phone_hash
from nudge.quiet_hours import DEFAULT_WINDOWS, Window, next_allowed
from nudge.receipts import attach_unmatched, has_unmatched
from nudge.registry import Registry
from nudge.segments import count_billed_segments
from nudge.store import (
    SUPPRESS_ALL,
    Consent,
    Customer,
    Link,
    Message,
    MessageStatusChange,
    Pause,
    Suppression,
    consent_key,
    read_sessions,
    suppress,
    utcnow,
)
from nudge.templates import ApprovalStatus, Template

log = get_logger(__name__)
_URL = re.compile(r"^https?://\S+$")
UNREACHABLE = "unreachable:"
"""Reason prefix of a message to a number that is invalid or blocked by its carrier."""
NOT_SENT = "not_sent:"
"""Reason prefix of a pending message that an attempt knows did not reach the provider."""
DEFERRED = "deferred:"
SUPPRESSED = "suppressed"
NO_CONSENT = "no_consent"
CONSENT_WITHDRAWN = "consent_withdrawn"


@dataclass(frozen=True, slots=True)
class Standing:
    """The recipient as the gate sees them: suppression, consent and profile."""

    suppression: Suppression | None
    consent: Consent | None
    customer: Customer | None

    # Plain methods, not properties: mutation testing (``make mutation``) skips decorated functions.
    def unreachable(self) -> str | None:
        """Why nothing at all may go to this number (invalid, carrier-blocked), or None."""
        if self.suppression is not None and self.suppression.scope == SUPPRESS_ALL:
            return self.suppression.reason
        return None

    def suppressed(self) -> bool:
        return self.suppression is not None

    def consent_refusal(self) -> str | None:
        """Why marketing may not go to this customer for want of consent, or None."""
        if self.consent is None:
            return NO_CONSENT
        if not self.consent.granted:
            return f"{CONSENT_WITHDRAWN}:{self.consent.source}"
        return None


TEMPLATE_NOT_APPROVED = "template_not_approved:"
SIGNATURE_NOT_APPROVED = "signature_not_approved:"
SIGN_NAME_PROVIDERS = frozenset({"aliyun", "tencent"})
"""Providers that sign with a name, where a template's own signature applies (Twilio's and the
simulator API's sender is a number)."""


class SendActivities:
    """Built by the worker with its store, router, registry and public gateway URL.

    Without a ``registry``, one on the same store is made, seeded on first use with the built-in
    templates and the router's signatures (what the worker's own registry holds on a fresh
    database). ``complaints`` counts providers' send-time opt-out codes against the complaint-rate
    breaker; ``pauses`` is what the gate reads paused scopes through. Both default to their own on
    ``sessions`` (without an alert webhook).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        router: Router,
        *,
        link_base_url: str,
        registry: Registry | None = None,
        status_callbacks: Mapping[str, str] | None = None,
        quiet_hours: Mapping[str, Window] = DEFAULT_WINDOWS,
        caps: Sequence[FrequencyCap] = DEFAULT_CAPS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        complaints: ComplaintRecorder | None = None,
        pauses: PauseCache | None = None,
    ) -> None:
        self._complaints = complaints or ComplaintRecorder(sessions)
        self._pauses = pauses or PauseCache(sessions)
        self._registry = registry or Registry(sessions, routes=[route.config for route in router.routes])
        self._windows = dict(quiet_hours)
        self._caps = list(caps)
        self._postgres = sessions.kw["bind"].dialect.name == "postgresql"
        self._sessions = sessions
        self._reads = read_sessions(sessions)
        self._router = router
        self._link_base_url = link_base_url.rstrip("/")
        self._callbacks = dict(status_callbacks or {})
        self._clock = clock

    @activity.defn(name="send_message")
    async def send_message(self, request: SendRequest) -> SendResult:
        return await self._send(request)

    async def _send(self, request: SendRequest) -> SendResult:
        """The gate and the send (undecorated, so that ``make mutation`` can mutate it)."""
        fresh = False
        template: Template | None = None
        message, standing = await self._lookup(request)
        customer = standing.customer
        if message is None:
            message, fresh, template = await self._create(request, customer)
        if message.status != MessageStatus.PENDING:
            return self._result(message)
        if template is None:
            # A later attempt: the same variant the first one rendered, by the customer's language.
            template = await self._template(request.template, customer)
        if not fresh and message.route and message.reason is None:
            # An earlier attempt called this route and never learned the answer. Ask it first: if
            # the message went out, the store must say so, whatever the gate would say now.
            reconciled = await self._reconcile(message, template)
            if reconciled is not None:
                return reconciled

        # The gate, in order. Each check that refuses records its decision on the message.
        # gate: template and signature approval (the registry)
        # (signatures are per route: ``_dispatch`` skips a route whose signature is not approved)
        if template.status is not ApprovalStatus.APPROVED:
            reason = f"{TEMPLATE_NOT_APPROVED}{template.status.value}"
            return self._result(await self._block(message.id, reason))
        marketing = _is_marketing(request, template)
        # gate: invalid or carrier-blocked number (every category)
        unreachable = standing.unreachable()
        if unreachable is not None:
            return self._result(await self._block(message.id, f"{UNREACHABLE}{unreachable}"))
        if marketing and standing.suppressed():
            return self._result(await self._block(message.id, SUPPRESSED))
        # gate: consent (marketing)
        refusal = standing.consent_refusal() if marketing else None
        if refusal is not None:
            return self._result(await self._block(message.id, refusal))
        # gate: paused scopes (complaint-rate breaker, nudge pause)
        # (and each candidate route and its signature in _dispatch)
        if marketing:
            paused = await self._paused(message, signature=request.signature)
            if paused is not None:
                return self._result(await self._block(message.id, paused_reason(paused)))
        if marketing and message.to:
            opens = next_allowed(
                self._clock(),
                message.to,
                profile_zone=customer.timezone if customer else None,
                windows=self._windows,
            )
            if opens is not None:
                return self._result(await self._defer(message.id, "quiet_hours", opens))
        # gate: frequency caps (an atomic reservation)
        caps = applicable([*self._caps, *request.caps], Category(message.category))
        if caps and message.cap_reserved_at is None:
            capped = await self._reserve(message, caps)
            if capped is not None:
                return self._result(capped)
        return await self._dispatch(request, message, template, _recipient(message.to or "", customer))

    # ----- routing and sending -------------------------------------------------------------

    async def _dispatch(
        self, request: SendRequest, message: Message, template: Template, recipient: Recipient
    ) -> SendResult:
        try:
            candidates = self._router.candidates(recipient, template, request.category, forced=request.route)
        except NoRoute as exc:
            return self._result(await self._block(message.id, f"no_route: {exc}"))
        signatures = {r.name: _signature(request, template, r, recipient.language) for r in candidates}
        usable = [r for r in candidates if await self._registry.signature_approved(signatures[r.name])]
        if not usable:
            reason = f"{SIGNATURE_NOT_APPROVED}{signatures[candidates[0].name]}"
            return self._result(await self._block(message.id, reason))
        if len(usable) < len(candidates):
            log.info(
                "routes_skipped",
                message_id=message.id,
                reason="signature_not_approved",
                routes=[r.name for r in candidates if r not in usable],
            )
        priority = request.category is Category.TRANSACTIONAL
        marketing = _is_marketing(request, template)
        held: dict[str, Pause] = {}
        for route in usable:
            if marketing:
                paused = await self._paused(message, route=route, signature=signatures[route.name])
                if paused is not None:
                    held[route.name] = paused
                    continue  # like an open breaker, except that it lasts until resumed
            if not route.breaker.allow():
                continue
            if route.name != message.route or message.reason is not None:
                # Claim the route before calling it: a later attempt must know where to look.
                message = await self._claim_route(message, route, signatures[route.name])
            sms = self._outbound(message, route, template)
            await route.limiter.acquire(priority=priority)
            try:
                submission = await route.provider.send(sms)
            except AccountProviderError as exc:
                route.breaker.trip(f"{exc.code}: {exc}")
                continue  # refused outright: the next route is safe
            except DeferredProviderError as exc:
                route.breaker.record_success()
                return self._result(await self._defer(message.id, exc.code, exc.retry_at))
            except PermanentProviderError as exc:
                route.breaker.record_success()
                return self._result(await self._record_failure(message, exc))
            except RetryableProviderError as exc:
                route.breaker.record_failure(exc.code)
                if not exc.ambiguous:
                    await self._mark(message.id, f"{NOT_SENT}{exc.code}")
                raise ApplicationError(
                    f"{route.name} {exc.code}: {exc}", type="RetryableProviderError"
                ) from exc
            except httpx.HTTPError as exc:
                route.breaker.record_failure(type(exc).__name__)
                if never_reached(exc):
                    await self._mark(message.id, f"{NOT_SENT}{type(exc).__name__}")
                    raise ApplicationError(
                        f"{route.name} unreachable ({type(exc).__name__})", type="ProviderUnreachable"
                    ) from exc
                # Ambiguous: the carrier may have accepted it. The retry reconciles before resending.
                raise ApplicationError(
                    f"{route.name} call failed ({type(exc).__name__}); will reconcile and retry",
                    type="ProviderUnreachable",
                ) from exc
            route.breaker.record_success()
            message = await self._record_submission(message.id, route, submission)
            self._log_sent(request, message)
            return self._result(message)
        if len(held) == len(usable):
            return self._result(await self._block(message.id, paused_reason(held[usable[0].name])))
        unavailable = ", ".join(
            f"{r.name} ({paused_reason(held[r.name]) if r.name in held else r.breaker.reason})"
            for r in usable
        )
        raise ApplicationError(
            f"every route for this message is paused: {unavailable}", type="NoRouteAvailable"
        )

    async def _paused(
        self, message: Message, *, signature: str | None, route: Route | None = None
    ) -> Pause | None:
        """The pause, if any, that holds this marketing message (on ``route``, when given)."""
        return await self._pauses.find(
            (Scope.TEMPLATE, message.template),
            (Scope.JOURNEY, message.journey),
            (Scope.SIGNATURE, signature),
            (Scope.ROUTE, route.name if route else None),
        )

    async def _reconcile(self, message: Message, template: Template) -> SendResult | None:
        """Ask the route an earlier attempt called whether it has the message already.

        Providers' lookups lag behind their sends (Tencent lists a message only once it has a
        report). "Not found" counts as "not sent" only after the route's ``lookup_grace`` since
        that attempt; before then the attempt fails retryably and comes back when it is over.
        """
        route = self._router.by_name.get(message.route or "")
        if route is None:
            return None
        since = message.updated_at - timedelta(seconds=5)
        submission = await route.provider.lookup(self._outbound(message, route, template), since=since)
        if submission is not None and not await self._claimed_by_another(message, submission):
            log.info(
                "send_reconciled", message_id=message.id, route=route.name, attempt=activity.info().attempt
            )
            return self._result(await self._record_submission(message.id, route, submission))
        waited = (self._clock() - message.updated_at).total_seconds()
        grace = route.provider.lookup_grace
        if waited < grace:
            raise ApplicationError(
                f"{route.name} does not list the message yet; looking again in {grace - waited:.0f} s "
                "before sending it again",
                type="ReconcilePending",
                next_retry_delay=timedelta(seconds=max(1.0, grace - waited)),
            )
        log.warning(
            "send_not_found_resending", message_id=message.id, route=route.name, waited_s=round(waited)
        )
        return None

    async def _claimed_by_another(self, message: Message, submission: Submission) -> bool:
        """A lookup that matched by content (Twilio) must not claim another message's send."""
        if not submission.provider_message_id:
            return False
        async with self._reads() as session:
            rows = await session.exec(
                select(Message.id).where(
                    Message.provider_message_id == submission.provider_message_id, Message.id != message.id
                )
            )
            return rows.first() is not None

    def _outbound(self, message: Message, route: Route, template: Template) -> OutboundSms:
        params: dict[str, Any] = dict(message.params or {})
        return OutboundSms(
            message_id=message.id,
            to=message.to or "",
            body=message.body,
            signature=message.signature or route.config.signature,
            template_code=template.provider_codes.get(route.config.provider),
            template_params={
                name: str(params[name]) for name in template.ordered_variables if name in params
            },
            status_callback=self._callbacks.get(route.config.provider),
        )

    # ----- the store -----------------------------------------------------------------------

    async def _find(self, key: str) -> Message | None:
        async with self._reads() as session:
            result = await session.exec(select(Message).where(Message.idempotency_key == key))
            return result.first()

    async def _lookup(self, request: SendRequest) -> tuple[Message | None, Standing]:
        """The message an earlier attempt stored (if any), and what the gate needs to know about
        the recipient, in one lock-free read."""
        async with self._reads() as session:
            found = await session.exec(
                select(Message).where(Message.idempotency_key == request.idempotency_key)
            )
            message = found.first()
            if message is not None and message.status != MessageStatus.PENDING:
                return message, Standing(suppression=None, consent=None, customer=None)
            customer = await session.get(Customer, request.customer_id)
            to = message.to if message is not None else (customer.phone if customer else None)
            suppression = await session.get(Suppression, phone_hash(to)) if to else None
            consent = await session.get(Consent, consent_key(request.customer_id))
        return message, Standing(suppression=suppression, consent=consent, customer=customer)

    async def _reserve(self, message: Message, caps: list[FrequencyCap]) -> Message | None:
        """Take a place under every cap that applies, or record which one is full.

        Counting and reserving happen in one transaction that holds the customer's row lock on
        PostgreSQL (``SELECT ... FOR UPDATE``) and the write lock on SQLite (``BEGIN IMMEDIATE``),
        so racing sends for one customer queue here and each counts the others' reservations.
        """
        now = self._clock()
        longest = max(cap.window for cap in caps)
        async with self._sessions() as session:
            if self._postgres:
                lock = select(Customer.id).where(Customer.id == message.customer_id).with_for_update()
                await session.exec(lock)
            rows = await session.exec(
                select(Message.cap_reserved_at, Message.journey).where(
                    Message.customer_id == message.customer_id,
                    Message.category == message.category,
                    col(Message.cap_reserved_at) > now - longest,
                    col(Message.status).not_in([MessageStatus.BLOCKED.value, MessageStatus.FAILED.value]),
                    Message.id != message.id,
                )
            )
            held = [Reservation(at, journey) for at, journey in rows.all() if at is not None]
            full = full_cap(caps, held, now=now, journey=message.journey)
            values: dict[str, Any] = {"updated_at": utcnow()}
            if full is None:
                values["cap_reserved_at"] = now
            else:
                values.update(
                    status=MessageStatus.BLOCKED.value, reason=full.reason, defer_until=full.frees_at
                )
            await session.exec(
                update(Message)
                .where(col(Message.id) == message.id, col(Message.status) == MessageStatus.PENDING.value)
                .values(**values)
            )
            await session.commit()
        if full is None:
            return None
        log.info(
            "message_capped",
            message_id=message.id,
            cap=full.cap.label,
            counted=len(held),
            frees_at=full.frees_at.isoformat() if full.frees_at else None,
        )
        async with self._reads() as session:
            return await session.get(Message, message.id)

    async def _create(
        self, request: SendRequest, customer: Customer | None
    ) -> tuple[Message, bool, Template]:
        template = await self._template(request.template, customer)
        message = Message(
            idempotency_key=request.idempotency_key,
            workflow_id=request.workflow_id,
            journey=request.journey,
            step=request.step,
            customer_id=request.customer_id,
            template=request.template,
            variant=request.variant,
            # The category the caps count it under: a payment template in a marketing journey is
            # marketing, as the opt-out check treats it.
            category=(Category.MARKETING if _is_marketing(request, template) else template.category).value,
            notify_receipt=request.notify_receipt,
        )
        links: list[Link] = []
        if customer is None or not customer.phone:
            message.status = MessageStatus.BLOCKED
            message.reason = "no_phone"
        else:
            message.to = customer.phone
            params, links = self._track_links(message.id, request.params)
            try:
                message.body = template.render(params)
            except TemplateError as exc:
                raise ApplicationError(str(exc), type="TemplateError", non_retryable=True) from exc
            message.params = {k: v for k, v in params.items() if k in template.variables}
            recipient = _recipient(customer.phone, customer)
            try:
                route = self._router.candidates(recipient, template, request.category, forced=request.route)[
                    0
                ]
            except NoRoute as exc:
                message.status = MessageStatus.BLOCKED
                message.reason = f"no_route: {exc}"
            else:
                _price(message, route, _signature(request, template, route, recipient.language))
        async with self._sessions() as session:
            session.add(message)
            session.add_all(links)
            try:
                await session.commit()
            except IntegrityError:
                # A concurrent attempt with the same key won the race; use its row.
                await session.rollback()
                existing = await self._find(request.idempotency_key)
                if existing is None:
                    raise
                return existing, False, template
        return message, True, template

    async def _template(self, code: str, customer: Customer | None) -> Template:
        """The registry's variant of ``code`` for the customer's language; unknown is permanent."""
        try:
            return await self._registry.get(code, _language(customer))
        except TemplateError as exc:
            raise ApplicationError(str(exc), type="TemplateError", non_retryable=True) from exc

    def _track_links(self, message_id: str, params: dict[str, Any]) -> tuple[dict[str, Any], list[Link]]:
        """Replace every URL parameter with a tracked short link."""
        rendered: dict[str, Any] = {}
        links: list[Link] = []
        for name, value in params.items():
            if isinstance(value, str) and _URL.match(value):
                link = Link(message_id=message_id, target_url=value)
                links.append(link)
                rendered[name] = f"{self._link_base_url}/l/{link.code}"
            else:
                rendered[name] = value
        return rendered, links

    async def _claim_route(self, message: Message, route: Route, signature: str) -> Message:
        """Put a pending message on ``route`` and clear an earlier attempt's reason, before the call:
        from now on a retry that finds it pending asks this route, about sends since now."""
        async with self._sessions() as session:
            row = await session.get(Message, message.id)
            assert row is not None
            previous = row.route
            _price(row, route, signature)
            row.reason = None
            row.updated_at = utcnow()
            session.add(row)
            await session.commit()
        if previous and previous != route.name:
            log.warning("message_rerouted", message_id=message.id, route=route.name, previous=previous)
        return row

    async def _mark(self, message_id: str, reason: str) -> None:
        async with self._sessions() as session:
            row = await session.get(Message, message_id)
            if row is not None and row.status == MessageStatus.PENDING:
                row.reason = reason
                row.updated_at = utcnow()
                session.add(row)
                await session.commit()

    async def _block(self, message_id: str, reason: str) -> Message:
        async with self._sessions() as session:
            row = await session.get(Message, message_id)
            assert row is not None
            row.status = MessageStatus.BLOCKED
            row.reason = reason
            row.updated_at = utcnow()
            session.add(row)
            await session.commit()
        log.warning("message_blocked", message_id=message_id, reason=reason)
        return row

    async def _defer(self, message_id: str, code: str, retry_at: datetime) -> Message:
        async with self._sessions() as session:
            row = await session.get(Message, message_id)
            assert row is not None
            row.reason = f"{DEFERRED}{code}"
            row.defer_until = retry_at
            # It goes out later, not now: it takes its place under the caps again when it does.
            row.cap_reserved_at = None
            row.updated_at = utcnow()
            session.add(row)
            await session.commit()
        log.info("message_deferred", message_id=message_id, code=code, until=retry_at.isoformat())
        return row

    async def _record_submission(self, message_id: str, route: Route, submission: Submission) -> Message:
        """Mark the message submitted, and apply any receipt that arrived before this answer.

        Write-only statements (no read first): on SQLite a transaction holds the database's one
        write lock from its first statement, and a send must not keep the transactional lane
        waiting behind reads.
        """
        values: dict[str, Any] = {
            "provider": submission.provider,
            "route": route.name,
            "reason": None,
            "defer_until": None,
            "updated_at": utcnow(),
            # A receipt matched by our own id (Aliyun's OutId) may already have moved it on.
            "status": case(
                (col(Message.status) == MessageStatus.PENDING.value, MessageStatus.SUBMITTED.value),
                else_=col(Message.status),
            ),
        }
        if submission.provider_message_id:
            values["provider_message_id"] = submission.provider_message_id
        if submission.segments:
            values["segments"] = submission.segments
            values["cost"] = round(submission.segments * route.config.cost_per_segment, 6)
        async with self._sessions() as session:
            await session.exec(update(Message).where(col(Message.id) == message_id).values(**values))
            session.add(
                MessageStatusChange(
                    message_id=message_id,
                    provider=submission.provider,
                    provider_message_id=submission.provider_message_id,
                    status=MessageStatus.SUBMITTED,
                    applied=True,
                )
            )
            await session.commit()
        async with self._reads() as session:
            message = await session.get(Message, message_id)
            # Receipts that came before the provider's id was stored are waiting unmatched.
            early = bool(submission.provider_message_id) and await has_unmatched(
                session, submission.provider, submission.provider_message_id or ""
            )
        if early:
            async with self._sessions() as session:
                message = await session.get(Message, message_id)
                assert message is not None
                await attach_unmatched(session, message)
                await session.commit()
        assert message is not None
        return message

    async def _record_failure(self, message: Message, exc: PermanentProviderError) -> Message:
        async with self._sessions() as session:
            row = await session.get(Message, message.id)
            assert row is not None
            row.status = MessageStatus.FAILED
            row.provider = exc.provider
            row.error_code = exc.code
            row.reason = f"provider:{exc.code}"
            row.updated_at = utcnow()
            session.add(
                MessageStatusChange(
                    message_id=message.id,
                    provider=exc.provider,
                    status=MessageStatus.FAILED,
                    error_code=exc.code,
                    applied=True,
                    raw={"message": str(exc)},
                )
            )
            if (exc.opted_out or exc.unreachable) and row.to:
                await suppress(
                    session,
                    row.to,
                    reason=f"provider:{exc.code}",
                    source=exc.provider,
                    scope=SUPPRESS_ALL if exc.unreachable else None,
                )
            await session.commit()
        if exc.opted_out:
            await self._count_complaint(row, exc.code)
        log.warning(
            "message_rejected",
            message_id=message.id,
            code=exc.code,
            provider=exc.provider,
            opted_out=exc.opted_out,
            unreachable=exc.unreachable,
        )
        return row

    async def _count_complaint(self, message: Message, code: str) -> None:
        """A provider's opt-out code counts against the breaker; counting it never fails the send
        (the message is recorded failed either way, so a retry would not count it again)."""
        try:
            await self._complaints.record(message, ComplaintKind.PROVIDER_CODE, code)
        except Exception:  # noqa: BLE001 - logged, and the send's result stands
            log.exception("complaint_not_recorded", message_id=message.id, code=code)

    def _log_sent(self, request: SendRequest, message: Message) -> None:
        log.info(
            "message_sent",
            message_id=message.id,
            journey=request.journey,
            step=request.step,
            template=request.template,
            to=mask(message.to or ""),
            route=message.route,
            provider=message.provider,
            segments=message.segments,
            cost=message.cost,
        )

    def _result(self, message: Message) -> SendResult:
        status = MessageStatus(message.status)
        if status == MessageStatus.PENDING and message.defer_until is not None:
            decision = SendDecision.DEFERRED
        elif status == MessageStatus.BLOCKED and message.reason == SUPPRESSED:
            decision = SendDecision.SUPPRESSED
        elif status == MessageStatus.BLOCKED and (message.reason or "").startswith(CAPPED):
            decision = SendDecision.CAPPED
        elif status in (MessageStatus.BLOCKED, MessageStatus.FAILED, MessageStatus.PENDING):
            decision = SendDecision.BLOCKED
        else:
            decision = SendDecision.SENT
        return SendResult(
            message_id=message.id,
            decision=decision,
            reason=None if decision is SendDecision.SENT else (message.reason or message.status),
            provider=message.provider,
            provider_message_id=message.provider_message_id,
            segments=message.segments,
            # The route it went (or will go) out on; a refused message went nowhere.
            route=message.route if decision in (SendDecision.SENT, SendDecision.DEFERRED) else None,
            cost=message.cost,
            status=status,
            retry_at=message.defer_until
            if decision in (SendDecision.DEFERRED, SendDecision.CAPPED)
            else None,
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


def _is_marketing(request: SendRequest, template: Template) -> bool:
    """Marketing when the template or the journey is: a payment template inside a marketing
    journey still respects an opt-out."""
    return Category.MARKETING in (request.category, template.category)


def _language(customer: Customer | None) -> str | None:
    language = ((customer.attributes if customer else None) or {}).get("language")
    return language if isinstance(language, str) else None


def _recipient(to: str, customer: Customer | None) -> Recipient:
    attributes: dict[str, Any] = (customer.attributes if customer else None) or {}
    return Recipient.of(to, tier=attributes.get("tier"), language=_language(customer))


def _signature(request: SendRequest, template: Template, route: Route, language: str | None) -> str:
    """The journey's override, else the template's own signature where the provider signs with
    a name, else the route's signature for the customer's language."""
    if request.signature:
        return request.signature
    if template.signature and route.config.provider in SIGN_NAME_PROVIDERS:
        return template.signature
    return route.config.signature_for(language)


def _price(message: Message, route: Route, signature: str) -> None:
    """Put the message on ``route``: its signature, billed segments and cost."""
    message.route = route.name
    message.signature = signature
    message.segments = count_billed_segments(
        message.body, provider=route.config.provider, to=message.to or "", signature=signature
    )
    message.cost = round(message.segments * route.config.cost_per_segment, 6)
    message.currency = route.config.currency
