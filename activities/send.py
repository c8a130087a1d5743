"""The one gate every send passes through: ``send_message``.

Order of work, so that a retry never sends twice:
1. Find the message by its idempotency key. A message the provider already accepted is returned
   as it is; nothing is sent again.
2. Otherwise render the template, write the row as ``pending`` and commit, *then* call the provider.
3. A ``pending`` row on a retry means an earlier attempt may have reached the provider (a timeout
   after the carrier accepted it). Ask the provider by our message id before sending again.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.providers.base import OutboundSms, Provider, Submission
from nudge.errors import PermanentProviderError, RetryableProviderError, TemplateError
from nudge.logging import get_logger
from nudge.models import MessageStatus, SendDecision, SendRequest, SendResult
from nudge.phone import mask
from nudge.segments import count_segments
from nudge.store import Customer, Link, Message, MessageStatusChange, utcnow
from nudge.templates import get_template

log = get_logger(__name__)
_URL = re.compile(r"^https?://\S+$")


class SendActivities:
    """Built by the worker with its store, provider and public gateway URL."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        provider: Provider,
        *,
        link_base_url: str,
        sender: str,
    ) -> None:
        self._sessions = sessions
        self._provider = provider
        self._link_base_url = link_base_url.rstrip("/")
        self._sender = sender

    @activity.defn(name="send_message")
    async def send_message(self, request: SendRequest) -> SendResult:
        message = await self._find(request.idempotency_key)
        if message is None:
            message = await self._create(request)
        if message.status != MessageStatus.PENDING:
            return self._result(message)

        submission: Submission | None = None
        if activity.info().attempt > 1:
            submission = await self._provider.lookup(message.id)
            if submission is not None:
                log.info("send_reconciled", message_id=message.id, attempt=activity.info().attempt)
        if submission is None:
            submission = await self._submit(message)
        if submission is None:
            return self._result(await self._find(request.idempotency_key) or message)
        message = await self._record_submission(message.id, submission)
        log.info(
            "message_sent",
            message_id=message.id,
            journey=request.journey,
            step=request.step,
            template=request.template,
            to=mask(message.to or ""),
            provider=submission.provider,
            segments=message.segments,
        )
        return self._result(message)

    async def _find(self, key: str) -> Message | None:
        async with self._sessions() as session:
            result = await session.exec(select(Message).where(Message.idempotency_key == key))
            return result.first()

    async def _create(self, request: SendRequest) -> Message:
        try:
            template = get_template(request.template)
        except TemplateError as exc:
            raise ApplicationError(str(exc), type="TemplateError", non_retryable=True) from exc
        message = Message(
            idempotency_key=request.idempotency_key,
            workflow_id=request.workflow_id,
            journey=request.journey,
            step=request.step,
            customer_id=request.customer_id,
            template=request.template,
            variant=request.variant,
            category=template.category.value,
            notify_receipt=request.notify_receipt,
        )
        async with self._sessions() as session:
            customer = await session.get(Customer, request.customer_id)
        if customer is None or not customer.phone:
            message.status = MessageStatus.BLOCKED
            message.reason = "no_phone"
            links: list[Link] = []
        else:
            message.to = customer.phone
            params, links = self._track_links(message.id, request.params)
            try:
                message.body = template.render(params)
            except TemplateError as exc:
                raise ApplicationError(str(exc), type="TemplateError", non_retryable=True) from exc
            message.segments = count_segments(message.body)
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
                return existing
        return message

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

    async def _submit(self, message: Message) -> Submission | None:
        sms = OutboundSms(message_id=message.id, to=message.to or "", body=message.body, sender=self._sender)
        try:
            return await self._provider.send(sms)
        except PermanentProviderError as exc:
            await self._record_failure(message.id, exc.provider, exc.code, str(exc))
            log.warning("message_rejected", message_id=message.id, code=exc.code, provider=exc.provider)
            return None
        except RetryableProviderError as exc:
            raise ApplicationError(
                f"{exc.provider} {exc.code}: {exc}", type="RetryableProviderError"
            ) from exc
        except httpx.HTTPError as exc:
            # Ambiguous: the carrier may have accepted it. The retry reconciles before resending.
            raise ApplicationError(
                f"provider call failed ({type(exc).__name__}); will reconcile and retry",
                type="ProviderUnreachable",
            ) from exc

    async def _record_submission(self, message_id: str, submission: Submission) -> Message:
        async with self._sessions() as session:
            message = await session.get(Message, message_id)
            assert message is not None
            if message.status == MessageStatus.PENDING:
                message.status = MessageStatus.SUBMITTED
            message.provider = submission.provider
            message.provider_message_id = submission.provider_message_id
            message.updated_at = utcnow()
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
            return message

    async def _record_failure(self, message_id: str, provider: str, code: str, text: str) -> None:
        async with self._sessions() as session:
            message = await session.get(Message, message_id)
            assert message is not None
            message.status = MessageStatus.FAILED
            message.provider = provider
            message.error_code = code
            message.reason = f"provider:{code}"
            message.updated_at = utcnow()
            session.add(
                MessageStatusChange(
                    message_id=message_id,
                    provider=provider,
                    status=MessageStatus.FAILED,
                    error_code=code,
                    applied=True,
                    raw={"message": text},
                )
            )
            await session.commit()

    def _result(self, message: Message) -> SendResult:
        sent = message.status not in (MessageStatus.BLOCKED, MessageStatus.FAILED, MessageStatus.PENDING)
        return SendResult(
            message_id=message.id,
            decision=SendDecision.SENT if sent else SendDecision.BLOCKED,
            reason=None if sent else (message.reason or message.status),
            provider=message.provider,
            provider_message_id=message.provider_message_id,
            segments=message.segments,
        )
