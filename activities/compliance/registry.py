"""The template and signature registry: what may be sent, in which language, under which signature.

A template is stored once per language (``sms_template``, keyed by code and language; ``""`` is
the default variant) with its ``${var}`` body, category, provider codes, an optional signature
bound to it, and its review state. Signatures and senders (``sms_signature``) have a review state
too. Only approved templates and signatures are sent: the send gate asks ``get`` and
``signature_approved``.

Review, the same for templates and signatures::

    draft --submit--> pending --approve--> approved
      |                  \\--reject--> rejected
      \\--approve--> approved        (an operator who checked the text in the provider's console)

- ``reject`` also works on a draft, and on an approved entry (a provider withdrew it): it stops
  being sent.
- Repeating a step that already happened (approving an approved entry) changes nothing; a
  second ``reject`` only replaces the reason.
- Editing a template's body, category, codes or signature makes it a draft again, whatever its
  state, as Aliyun's console re-reviews a modified template; ``TemplateChange.review_reset`` says
  so. A rejected entry comes back only through such an edit.
- Submit and approve refuse a template whose wording breaks its locale's rule
  (``nudge.wording``: 拒收请回复R at the end of a Chinese marketing template, "Reply STOP to opt out"
  elsewhere, no opt-out wording in a Chinese notification).

Variants: ``get(code, language)`` prefers the approved variant in the customer's language
(``zh-CN``, then ``zh``), then the approved default. A draft variant is not live: until it is
approved, that language keeps getting the default. When no variant in the chain is approved, the
most specific one comes back, so that the gate can block with its state.

Reads for the send path come from an in-process snapshot of both tables, loaded at most every
``ttl`` seconds: a send adds no database round trip, and a change made elsewhere (the gateway)
reaches each worker within the TTL. Management calls always go to the database and drop this
process's snapshot.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.errors import ApprovalRefused, NotFound, TemplateError
from nudge.logging import get_logger
from nudge.models import Category
from nudge.routes import RouteConfig
from nudge.store import SmsSignature, SmsTemplate, read_sessions, utcnow
from nudge.templates import DEFAULT_LANGUAGE, ApprovalStatus, Template, builtin_templates
from nudge.wording import approval_problem, body_problem, opt_out_wording_problem

__all__ = [
    "CACHE_TTL",
    "Registry",
    "TemplateChange",
    "opt_out_wording_problem",
    "route_signatures",
]

log = get_logger(__name__)

CACHE_TTL = 2.0
"""Seconds a process serves sends from its snapshot of the registry before reading it again."""

Action = Literal["submit", "approve", "reject"]
_TARGET: dict[Action, ApprovalStatus] = {
    "submit": ApprovalStatus.PENDING,
    "approve": ApprovalStatus.APPROVED,
    "reject": ApprovalStatus.REJECTED,
}
_ALLOWED_FROM: dict[Action, frozenset[ApprovalStatus]] = {
    "submit": frozenset({ApprovalStatus.DRAFT}),
    "approve": frozenset({ApprovalStatus.DRAFT, ApprovalStatus.PENDING}),
    "reject": frozenset({ApprovalStatus.DRAFT, ApprovalStatus.PENDING, ApprovalStatus.APPROVED}),
}
_PAST = {"submit": "submitted", "approve": "approved", "reject": "rejected"}
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
_LANGUAGE = re.compile(r"^(?:[a-z]{2,3}(?:-[a-z0-9]{2,8})*)?$")

Row = TypeVar("Row", SmsTemplate, SmsSignature)


@dataclass(frozen=True, slots=True)
class TemplateChange:
    """What a put did: the stored variant, and whether it was new or changed."""

    template: SmsTemplate
    created: bool
    changed: bool
    review_reset: ApprovalStatus | None = None
    """The state an edit took the template out of (it is a draft now), if it was not a draft."""


@dataclass(frozen=True, slots=True)
class _Snapshot:
    templates: Mapping[str, Mapping[str, Template]]
    """code -> language -> variant"""
    signatures: Mapping[str, ApprovalStatus]
    loaded_at: float


def route_signatures(routes: Iterable[RouteConfig]) -> list[str]:
    """Every signature and sender the routes use, their language variants included."""
    names: dict[str, None] = {}
    for route in routes:
        names[route.signature] = None
        names.update(dict.fromkeys(route.signatures.values()))
    return list(names)


def language_chain(language: str | None) -> list[str]:
    """The variants to look for, most specific first: ``zh-cn``, ``zh``, then the default."""
    chain: list[str] = []
    tag = (language or "").strip().lower()
    while tag:
        chain.append(tag)
        tag = tag.rpartition("-")[0]
    chain.append(DEFAULT_LANGUAGE)
    return chain


def normalise_language(language: str | None) -> str:
    tag = (language or "").strip().lower()
    if not _LANGUAGE.match(tag):
        raise TemplateError(f"language {language!r} is not a language tag like 'zh' or 'en-us'")
    return tag


class Registry:
    """Templates and signatures with their review state, over the store.

    Args:
        sessions: write sessions on the store (reads use ``read_sessions`` on the same engine).
        builtins: templates inserted as approved, when missing, by ``seed``.
        routes: routes whose signatures ``seed`` inserts as approved, when missing.
        ttl: seconds a snapshot serves ``get`` and ``signature_approved``.
        clock: monotonic seconds, for the TTL.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        builtins: Iterable[Template] | None = None,
        routes: Sequence[RouteConfig] = (),
        ttl: float = CACHE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._reads = read_sessions(sessions)
        self._builtins = builtin_templates() if builtins is None else list(builtins)
        self._route_signatures = route_signatures(routes)
        self._ttl = ttl
        self._clock = clock
        self._snapshot: _Snapshot | None = None
        self._lock = asyncio.Lock()
        self._seeded = False

    # ----- the send path (from the snapshot) -----------------------------------------------

    async def get(self, code: str, language: str | None = None) -> Template:
        """The variant of ``code`` to send to a customer whose language is ``language``.

        Raises ``TemplateError`` when the code has no variant in that language nor a default.
        """
        variants = (await self._current()).templates.get(code)
        if not variants:
            raise TemplateError(f"unknown template {code!r}")
        found = [variants[tag] for tag in language_chain(language) if tag in variants]
        if not found:
            raise TemplateError(
                f"template {code!r} has no default variant and none for language {language!r} "
                f"(it has: {', '.join(sorted(variants))})"
            )
        return next((t for t in found if t.status is ApprovalStatus.APPROVED), found[0])

    async def signature_approved(self, name: str) -> bool:
        """True when ``name`` is a signature (or sender) in the registry, approved."""
        return (await self._current()).signatures.get(name) is ApprovalStatus.APPROVED

    async def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and self._clock() - snapshot.loaded_at < self._ttl:
            return snapshot
        async with self._lock:  # one reload at a time; the others wait and use it
            snapshot = self._snapshot
            if snapshot is not None and self._clock() - snapshot.loaded_at < self._ttl:
                return snapshot
            await self.seed()
            snapshot = await self._load()
            self._snapshot = snapshot
            return snapshot

    async def _load(self) -> _Snapshot:
        async with self._reads() as session:
            templates = (await session.exec(select(SmsTemplate))).all()
            signatures = (await session.exec(select(SmsSignature))).all()
        variants: dict[str, dict[str, Template]] = {}
        for row in templates:
            variants.setdefault(row.code, {})[row.language] = _template(row)
        return _Snapshot(
            templates=variants,
            signatures={row.name: ApprovalStatus(row.status) for row in signatures},
            loaded_at=self._clock(),
        )

    # ----- seeding ---------------------------------------------------------------------------

    async def seed(self) -> None:
        """Insert the built-in templates and the routes' signatures as approved, where missing.

        Idempotent, and never touches an existing row: an operator's edits stay. The gateway and
        the worker may seed a fresh database at the same moment; the one that loses the race
        sees the other's rows on its second pass.
        """
        if self._seeded:
            return
        for attempt in range(1, 4):
            try:
                await self._insert_missing()
                break
            except IntegrityError:
                if attempt == 3:
                    raise
        self._seeded = True

    async def _insert_missing(self) -> None:
        async with self._reads() as session:
            have_templates = set((await session.exec(select(SmsTemplate.code, SmsTemplate.language))).all())
            have_signatures = set((await session.exec(select(SmsSignature.name))).all())
        templates = [t for t in self._builtins if (t.code, t.language) not in have_templates]
        signatures = [name for name in self._route_signatures if name not in have_signatures]
        if not templates and not signatures:
            return
        now = utcnow()
        async with self._sessions() as session:
            for template in templates:
                session.add(
                    SmsTemplate(
                        code=template.code,
                        language=template.language,
                        body=template.body,
                        category=template.category.value,
                        provider_codes=dict(template.provider_codes),
                        signature=template.signature,
                        status=ApprovalStatus.APPROVED.value,
                        approved_at=now,
                    )
                )
            for name in signatures:
                session.add(SmsSignature(name=name, status=ApprovalStatus.APPROVED.value, approved_at=now))
            await session.commit()
        self._snapshot = None
        log.info(
            "registry_seeded",
            templates=[t.code for t in templates],
            signatures=len(signatures),
        )

    # ----- templates (management: always the database) -------------------------------------

    async def templates(self, code: str | None = None) -> list[SmsTemplate]:
        """Every template variant (of ``code``, when given), by code and language."""
        await self.seed()
        query = select(SmsTemplate).order_by(col(SmsTemplate.code), col(SmsTemplate.language))
        if code is not None:
            query = query.where(SmsTemplate.code == code)
        async with self._reads() as session:
            return list((await session.exec(query)).all())

    async def template(self, code: str, language: str | None = None) -> SmsTemplate:
        """One variant, exactly (no fallback to the default). Raises ``NotFound``."""
        await self.seed()
        key = (code, normalise_language(language))
        async with self._reads() as session:
            row = await session.get(SmsTemplate, key)
        if row is None:
            raise NotFound(f"unknown template {_label(*key)}", kind="template", name=_label(*key))
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
    ) -> TemplateChange:
        """Create a variant as a draft, or change one; a change of its text makes it a draft.

        Raises ``TemplateError`` for a bad code, language or body.
        """
        if not _NAME.match(code):
            raise TemplateError(f"template code {code!r} must be 1-100 letters, digits, '_', '.' or '-'")
        tag = normalise_language(language)
        problem = body_problem(body)
        if problem is not None:
            raise TemplateError(problem)
        await self.seed()
        wanted = (body, category.value, dict(provider_codes or {}), signature or None)
        for attempt in (1, 2):
            try:
                change = await self._put_template(code, tag, wanted)
                break
            except IntegrityError:
                if attempt == 2:  # a concurrent put created it; the second pass edits it
                    raise
        if change.changed:
            self._snapshot = None
            row = change.template
            log.info(
                "template_created" if change.created else "template_edited",
                code=code,
                language=tag,
                version=row.version,
                review_reset=change.review_reset,
            )
        return change

    async def _put_template(
        self, code: str, language: str, wanted: tuple[str, str, dict[str, str], str | None]
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
                )
                session.add(row)
                await session.commit()
                return TemplateChange(row, created=True, changed=True)
            if (row.body, row.category, dict(row.provider_codes or {}), row.signature) == wanted:
                return TemplateChange(row, created=False, changed=False)
            previous = ApprovalStatus(row.status)
            row.body, row.category, row.provider_codes, row.signature = wanted
            row.version += 1
            _set_status(row, ApprovalStatus.DRAFT, reason=None)
            session.add(row)
            await session.commit()
        reset = previous if previous is not ApprovalStatus.DRAFT else None
        return TemplateChange(row, created=False, changed=True, review_reset=reset)

    async def submit_template(self, code: str, language: str | None = None) -> SmsTemplate:
        return await self._review_template(code, language, "submit")

    async def approve_template(self, code: str, language: str | None = None) -> SmsTemplate:
        return await self._review_template(code, language, "approve")

    async def reject_template(self, code: str, language: str | None = None, *, reason: str) -> SmsTemplate:
        return await self._review_template(code, language, "reject", reason=reason)

    async def _review_template(
        self, code: str, language: str | None, action: Action, *, reason: str | None = None
    ) -> SmsTemplate:
        def wording(row: SmsTemplate) -> str | None:
            if action == "reject":
                return None
            return approval_problem(row.body, Category(row.category), row.language)

        key = (code, normalise_language(language))
        return await self._review(
            SmsTemplate, key, action, label=_label(*key), reason=reason, wording=wording
        )

    # ----- signatures ------------------------------------------------------------------------

    async def signatures(self) -> list[SmsSignature]:
        await self.seed()
        async with self._reads() as session:
            return list((await session.exec(select(SmsSignature).order_by(col(SmsSignature.name)))).all())

    async def signature(self, name: str) -> SmsSignature:
        await self.seed()
        async with self._reads() as session:
            row = await session.get(SmsSignature, name)
        if row is None:
            raise NotFound(f"unknown signature {name!r}", kind="signature", name=name)
        return row

    async def put_signature(self, name: str) -> tuple[SmsSignature, bool]:
        """Add a signature as a draft, or make a rejected one a draft again (to re-apply for it);
        any other existing signature is left as it is. Returns the row and whether it is new."""
        if not name.strip() or len(name) > 100 or name != name.strip():
            raise TemplateError(f"signature {name!r} must be 1-100 characters without outer spaces")
        await self.seed()
        async with self._sessions() as session:
            row = await session.get(SmsSignature, name, with_for_update=True)
            if row is not None and row.status != ApprovalStatus.REJECTED:
                return row, False
            created = row is None
            if row is None:
                row = SmsSignature(name=name)
            else:
                _set_status(row, ApprovalStatus.DRAFT, reason=None)
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:  # a concurrent put created it
                await session.rollback()
                return await self.signature(name), False
        self._snapshot = None
        log.info("signature_created" if created else "signature_returned_to_draft", signature=name)
        return row, created

    async def submit_signature(self, name: str) -> SmsSignature:
        return await self._review(SmsSignature, name, "submit", label=repr(name))

    async def approve_signature(self, name: str) -> SmsSignature:
        return await self._review(SmsSignature, name, "approve", label=repr(name))

    async def reject_signature(self, name: str, *, reason: str) -> SmsSignature:
        return await self._review(SmsSignature, name, "reject", label=repr(name), reason=reason)

    # ----- review, shared ----------------------------------------------------------------------

    async def _review(
        self,
        model: type[Row],
        key: str | tuple[str, str],
        action: Action,
        *,
        label: str,
        reason: str | None = None,
        wording: Callable[[Row], str | None] | None = None,
    ) -> Row:
        """Move one entry along the review (see the module docstring), under a row lock."""
        await self.seed()
        kind = "template" if model is SmsTemplate else "signature"
        if action == "reject" and not (reason or "").strip():
            raise ApprovalRefused(
                f"rejecting {kind} {label} needs a reason", action=action, status="", conflict=False
            )
        async with self._sessions() as session:
            row = await session.get(model, key, with_for_update=True)
            if row is None:
                raise NotFound(f"unknown {kind} {label}", kind=kind, name=label)
            current = ApprovalStatus(row.status)
            target = _TARGET[action]
            if current is target and action != "reject":
                return row
            if current is not target and current not in _ALLOWED_FROM[action]:
                raise ApprovalRefused(
                    f"cannot {action} {kind} {label}: it is {current.value}; {_HINT[current]}",
                    action=action,
                    status=current.value,
                    conflict=True,
                )
            problem = wording(row) if wording is not None else None
            if problem is not None:
                raise ApprovalRefused(
                    f"cannot {action} {kind} {label}: {problem}",
                    action=action,
                    status=current.value,
                    conflict=False,
                )
            _set_status(row, target, reason=reason.strip() if reason else None)
            session.add(row)
            await session.commit()
        self._snapshot = None
        log.info(f"{kind}_{_PAST[action]}", name=label, previous=current.value, reason=row.reason)
        return row


_HINT = {
    ApprovalStatus.DRAFT: "submit or approve it",
    ApprovalStatus.PENDING: "approve or reject it",
    ApprovalStatus.APPROVED: "reject withdraws it; a template whose text is put again is reviewed anew",
    ApprovalStatus.REJECTED: "put it again (it becomes a draft), then submit it",
}


def _set_status(row: SmsTemplate | SmsSignature, status: ApprovalStatus, *, reason: str | None) -> None:
    now: datetime = utcnow()
    row.status = status.value
    row.reason = reason
    row.updated_at = now
    if status is ApprovalStatus.APPROVED:
        row.approved_at = now
    else:
        row.approved_at = None


def _label(code: str, language: str) -> str:
    return f"{code!r}" + (f" ({language})" if language else "")


def _template(row: SmsTemplate) -> Template:
    return Template(
        code=row.code,
        body=row.body,
        category=Category(row.category),
        provider_codes=dict(row.provider_codes or {}),
        language=row.language,
        status=ApprovalStatus(row.status),
        signature=row.signature,
    )
