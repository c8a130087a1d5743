"""Creating, changing and reading registry entries (always from the database, never the snapshot).

A template is stored once per language (``sms_template``, keyed by code and language; ``""`` is
the default variant) with its ``${var}`` body, category, provider codes, an optional signature
bound to it, and its review state. Editing what a provider reviewed (body, category, codes,
signature) makes the variant a draft again; ``TemplateChange.review_reset`` says from what.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance.registry.names import (
    check_code,
    check_signature_name,
    normalise_language,
    template_label,
)
from activities.compliance.registry.review import set_status
from nudge.errors import NotFound, TemplateError
from nudge.logging import get_logger
from nudge.models import Category
from nudge.store import SmsSignature, SmsTemplate
from nudge.templates import ApprovalStatus
from nudge.wording import body_problem

log = get_logger(__name__)

_Reviewed = tuple[str, str, dict[str, str], str | None]
"""A template's body, category, provider codes and signature: what a provider reviews."""


@dataclass(frozen=True, slots=True)
class TemplateChange:
    """What a put did: the stored variant, and whether it was new or changed."""

    template: SmsTemplate
    created: bool
    changed: bool
    review_reset: ApprovalStatus | None = None
    """The state an edit took the template out of (it is a draft now), if it was not a draft."""


class Entries:
    """Templates and signatures as rows: list, get one, create or change.

    Args:
        sessions: write sessions on the store.
        reads: read sessions on the same engine.
        ready: awaited before every call (the registry seeds the tables first).
        changed: called after every call that changed a row (the registry drops its snapshot).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        *,
        ready: Callable[[], Awaitable[None]],
        changed: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._reads = reads
        self._ready = ready
        self._changed = changed

    # ----- templates ---------------------------------------------------------------------------

    async def templates(self, code: str | None = None) -> list[SmsTemplate]:
        await self._ready()
        query = select(SmsTemplate).order_by(col(SmsTemplate.code), col(SmsTemplate.language))
        if code is not None:
            query = query.where(SmsTemplate.code == code)
        async with self._reads() as session:
            return list((await session.exec(query)).all())

    async def template(self, code: str, language: str | None = None) -> SmsTemplate:
        await self._ready()
        key = (code, normalise_language(language))
        async with self._reads() as session:
            row = await session.get(SmsTemplate, key)
        if row is None:
            label = template_label(*key)
            raise NotFound(f"unknown template {label}", kind="template", name=label)
        return row

    async def put_template(
        self,
        code: str,
        *,
        language: str | None = None,
        body: str,
        category: Category,
        provider_codes: Mapping[str, str] | None = None,
        signature: str | None = None,
        by: str | None = None,
    ) -> TemplateChange:
        check_code(code)
        tag = normalise_language(language)
        problem = body_problem(body)
        if problem is not None:
            raise TemplateError(problem)
        await self._ready()
        wanted: _Reviewed = (body, category.value, dict(provider_codes or {}), signature or None)
        for attempt in (1, 2):
            try:
                change = await self._put_template(code, tag, wanted, by=by)
                break
            except IntegrityError:
                if attempt == 2:  # a concurrent put created it; the second pass edits it
                    raise
        if change.changed:
            self._changed()
            row = change.template
            log.info(
                "template_created" if change.created else "template_edited",
                code=code,
                language=tag,
                version=row.version,
                review_reset=change.review_reset,
                by=by,
            )
        return change

    async def _put_template(
        self, code: str, language: str, wanted: _Reviewed, *, by: str | None
    ) -> TemplateChange:
        body, category, provider_codes, signature = wanted
        async with self._sessions() as session:
            row = await session.get(SmsTemplate, (code, language), with_for_update=True)
            if row is None:
                row = SmsTemplate(
                    code=code,
                    language=language,
                    body=body,
                    category=category,
                    provider_codes=provider_codes,
                    signature=signature,
                    changed_by=by,
                )
                session.add(row)
                await session.commit()
                return TemplateChange(row, created=True, changed=True)
            previous = ApprovalStatus(row.status)
            same = (row.body, row.category, dict(row.provider_codes or {}), row.signature) == wanted
            if same and previous is not ApprovalStatus.REJECTED:
                return TemplateChange(row, created=False, changed=False)
            if not same:  # a rejected entry put again as it was comes back for review unchanged
                row.body, row.category, row.provider_codes, row.signature = wanted
                row.version += 1
            set_status(row, ApprovalStatus.DRAFT, reason=None, by=by)
            session.add(row)
            await session.commit()
        reset = previous if previous is not ApprovalStatus.DRAFT else None
        return TemplateChange(row, created=False, changed=True, review_reset=reset)

    # ----- signatures --------------------------------------------------------------------------

    async def signatures(self) -> list[SmsSignature]:
        await self._ready()
        async with self._reads() as session:
            return list((await session.exec(select(SmsSignature).order_by(col(SmsSignature.name)))).all())

    async def signature(self, name: str) -> SmsSignature:
        await self._ready()
        async with self._reads() as session:
            row = await session.get(SmsSignature, name)
        if row is None:
            raise NotFound(f"unknown signature {name!r}", kind="signature", name=name)
        return row

    async def put_signature(self, name: str, *, by: str | None = None) -> tuple[SmsSignature, bool]:
        check_signature_name(name)
        await self._ready()
        async with self._sessions() as session:
            row = await session.get(SmsSignature, name, with_for_update=True)
            if row is not None and row.status != ApprovalStatus.REJECTED:
                return row, False
            created = row is None
            if row is None:
                row = SmsSignature(name=name, changed_by=by)
            else:
                set_status(row, ApprovalStatus.DRAFT, reason=None, by=by)
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:  # a concurrent put created it
                await session.rollback()
                return await self.signature(name), False
        self._changed()
        log.info("signature_created" if created else "signature_returned_to_draft", signature=name, by=by)
        return row, created
