"""The send path's view of the registry: an in-process snapshot of both tables.

The snapshot is loaded at most every ``ttl`` seconds: a send adds no database round trip, and a
change made elsewhere (the gateway) reaches each worker within the TTL. A change made through
this process's registry drops the snapshot at once.

Variants: ``variant(code, language)`` prefers the approved variant in the customer's language
(``zh-CN``, then ``zh``), then the approved default. A draft variant is not live: until it is
approved, that language keeps getting the default. When no variant in the chain is approved, the
most specific one comes back, so that the gate can block with its state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance.registry.names import language_chain
from nudge.errors import TemplateError
from nudge.models import Category
from nudge.store import SmsSignature, SmsTemplate
from nudge.templates import ApprovalStatus, Template

CACHE_TTL = 2.0
"""Seconds a process serves sends from its snapshot of the registry before reading it again."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    templates: Mapping[str, Mapping[str, Template]]
    """code -> language -> variant"""
    signatures: Mapping[str, ApprovalStatus]
    loaded_at: float

    def variant(self, code: str, language: str | None) -> Template:
        """The variant of ``code`` to send to a customer whose language is ``language``.

        Raises ``TemplateError`` when the code has no variant in that language nor a default.
        """
        variants = self.templates.get(code)
        if not variants:
            raise TemplateError(f"unknown template {code!r}")
        found = [variants[tag] for tag in language_chain(language) if tag in variants]
        if not found:
            raise TemplateError(
                f"template {code!r} has no default variant and none for language {language!r} "
                f"(it has: {', '.join(sorted(variants))})"
            )
        return next((t for t in found if t.status is ApprovalStatus.APPROVED), found[0])

    def signature_approved(self, name: str) -> bool:
        return self.signatures.get(name) is ApprovalStatus.APPROVED


class SnapshotCache:
    """Serves the current ``Snapshot``, reloading it when it is older than ``ttl``.

    Args:
        reads: read sessions on the store.
        prepare: awaited before every load (the registry seeds the tables first).
        ttl: seconds a snapshot is served.
        clock: monotonic seconds, for the TTL.
    """

    def __init__(
        self,
        reads: async_sessionmaker[AsyncSession],
        *,
        prepare: Callable[[], Awaitable[None]],
        ttl: float,
        clock: Callable[[], float],
    ) -> None:
        self._reads = reads
        self._prepare = prepare
        self._ttl = ttl
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Drop the snapshot: the next read loads the tables again."""
        self._snapshot = None

    async def current(self) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and self._fresh(snapshot):
            return snapshot
        async with self._lock:  # one reload at a time; the others wait and use it
            snapshot = self._snapshot
            if snapshot is not None and self._fresh(snapshot):
                return snapshot
            await self._prepare()
            snapshot = await self._load()
            self._snapshot = snapshot
            return snapshot

    def _fresh(self, snapshot: Snapshot) -> bool:
        return self._clock() - snapshot.loaded_at < self._ttl

    async def _load(self) -> Snapshot:
        async with self._reads() as session:
            templates = (await session.exec(select(SmsTemplate))).all()
            signatures = (await session.exec(select(SmsSignature))).all()
        variants: dict[str, dict[str, Template]] = {}
        for row in templates:
            variants.setdefault(row.code, {})[row.language] = _template(row)
        return Snapshot(
            templates=variants,
            signatures={row.name: ApprovalStatus(row.status) for row in signatures},
            loaded_at=self._clock(),
        )


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
