"""``Registry``: the one object the gate, the worker and the admin API hold. It composes the
snapshot cache (the send path), the seeder, the entries (CRUD) and the review."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance.registry.cache import CACHE_TTL, SnapshotCache
from activities.compliance.registry.entries import Entries, TemplateChange
from activities.compliance.registry.review import Review
from activities.compliance.registry.seed import Seeder, route_signatures
from nudge.models import Category
from nudge.routes import RouteConfig
from nudge.store import SmsSignature, SmsTemplate, read_sessions
from nudge.templates import Template, builtin_templates


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
        reads = read_sessions(sessions)
        self._seeder = Seeder(
            sessions,
            reads,
            templates=builtin_templates() if builtins is None else builtins,
            signatures=route_signatures(routes),
        )
        self._cache = SnapshotCache(reads, prepare=self.seed, ttl=ttl, clock=clock)
        self._entries = Entries(sessions, reads, ready=self.seed, changed=self._cache.invalidate)
        self._review = Review(sessions, ready=self.seed, changed=self._cache.invalidate)

    # ----- the send path (from the snapshot) -----------------------------------------------

    async def get(self, code: str, language: str | None = None) -> Template:
        """The variant of ``code`` to send to a customer whose language is ``language``.

        Raises ``TemplateError`` when the code has no variant in that language nor a default.
        """
        return (await self._cache.current()).variant(code, language)

    async def signature_approved(self, name: str) -> bool:
        """True when ``name`` is a signature (or sender) in the registry, approved."""
        return (await self._cache.current()).signature_approved(name)

    async def seed(self) -> None:
        """Insert the built-in templates and the routes' signatures as approved, where missing.

        Idempotent, and never touches an existing row: an operator's edits stay.
        """
        if await self._seeder.seed():
            self._cache.invalidate()

    # ----- templates (management: always the database) -------------------------------------

    async def templates(self, code: str | None = None) -> list[SmsTemplate]:
        """Every template variant (of ``code``, when given), by code and language."""
        return await self._entries.templates(code)

    async def template(self, code: str, language: str | None = None) -> SmsTemplate:
        """One variant, exactly (no fallback to the default). Raises ``NotFound``."""
        return await self._entries.template(code, language)

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
        """Create a variant as a draft, or change one; a change of its text makes it a draft.

        Raises ``TemplateError`` for a bad code, language or body.
        """
        return await self._entries.put_template(
            code,
            language=language,
            body=body,
            category=category,
            provider_codes=provider_codes,
            signature=signature,
            by=by,
        )

    async def submit_template(
        self, code: str, language: str | None = None, *, by: str | None = None
    ) -> SmsTemplate:
        return await self._review.template(code, language, "submit", by=by)

    async def approve_template(
        self, code: str, language: str | None = None, *, by: str | None = None
    ) -> SmsTemplate:
        return await self._review.template(code, language, "approve", by=by)

    async def reject_template(
        self, code: str, language: str | None = None, *, reason: str, by: str | None = None
    ) -> SmsTemplate:
        return await self._review.template(code, language, "reject", reason=reason, by=by)

    # ----- signatures ------------------------------------------------------------------------

    async def signatures(self) -> list[SmsSignature]:
        """Every signature and sender, by name."""
        return await self._entries.signatures()

    async def signature(self, name: str) -> SmsSignature:
        """One signature or sender. Raises ``NotFound``."""
        return await self._entries.signature(name)

    async def put_signature(self, name: str, *, by: str | None = None) -> tuple[SmsSignature, bool]:
        """Add a signature as a draft, or make a rejected one a draft again (to re-apply for it);
        any other existing signature is left as it is. Returns the row and whether it is new."""
        return await self._entries.put_signature(name, by=by)

    async def submit_signature(self, name: str, *, by: str | None = None) -> SmsSignature:
        return await self._review.signature(name, "submit", by=by)

    async def approve_signature(self, name: str, *, by: str | None = None) -> SmsSignature:
        return await self._review.signature(name, "approve", by=by)

    async def reject_signature(self, name: str, *, reason: str, by: str | None = None) -> SmsSignature:
        return await self._review.signature(name, "reject", reason=reason, by=by)
