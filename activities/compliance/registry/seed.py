"""Seeding: the built-in templates and the routes' signatures, inserted as approved where missing."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.logging import get_logger
from nudge.routes import RouteConfig
from nudge.store import SmsSignature, SmsTemplate, utcnow
from nudge.templates import ApprovalStatus, Template

log = get_logger(__name__)


def route_signatures(routes: Iterable[RouteConfig]) -> list[str]:
    """Every signature and sender the routes use, their language variants included."""
    names: dict[str, None] = {}
    for route in routes:
        names[route.signature] = None
        names.update(dict.fromkeys(route.signatures.values()))
    return list(names)


class Seeder:
    """Inserts what the registry must hold from the start, once per process.

    Args:
        sessions: write sessions on the store.
        reads: read sessions on the same engine.
        templates: the templates to insert as approved, when missing.
        signatures: the signatures and senders to insert as approved, when missing.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        *,
        templates: Iterable[Template],
        signatures: Iterable[str],
    ) -> None:
        self._sessions = sessions
        self._reads = reads
        self._templates = list(templates)
        self._signatures = list(signatures)
        self._seeded = False

    async def seed(self) -> bool:
        """Insert the missing rows; True when this call inserted any.

        Idempotent, and never touches an existing row: an operator's edits stay. The gateway and
        the worker may seed a fresh database at the same moment; the one that loses the race
        sees the other's rows on its second pass.
        """
        if self._seeded:
            return False
        for attempt in range(1, 4):
            try:
                inserted = await self._insert_missing()
                break
            except IntegrityError:
                if attempt == 3:
                    raise
        self._seeded = True
        return inserted

    async def _insert_missing(self) -> bool:
        async with self._reads() as session:
            have_templates = set((await session.exec(select(SmsTemplate.code, SmsTemplate.language))).all())
            have_signatures = set((await session.exec(select(SmsSignature.name))).all())
        templates = [t for t in self._templates if (t.code, t.language) not in have_templates]
        signatures = [name for name in self._signatures if name not in have_signatures]
        if not templates and not signatures:
            return False
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
        log.info(
            "registry_seeded",
            templates=[t.code for t in templates],
            signatures=len(signatures),
        )
        return True
