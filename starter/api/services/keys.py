"""API keys in the store: make, list, revoke, and check the one a request carries.

A check reads the store at most once per key every ``cache_ttl``: an event is authorised with a
digest and a dict lookup, not a query. A revoke through this gateway takes effect at once; one
made elsewhere (``nudge keys revoke`` on the database, another replica) within ``cache_ttl``.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge import apikeys
from nudge.apikeys import Scope
from nudge.errors import InvalidInput, NotFound
from nudge.logging import get_logger
from nudge.store import ApiKey, utcnow

log = get_logger(__name__)
LOCAL_ADMIN = "local-admin"
"""The name of the key ``nudge up`` makes for the developer's CLI and demo."""
_CACHE_LIMIT = 10_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@:-]*")


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: an API key's name, public prefix and scopes."""

    name: str
    prefix: str
    scopes: tuple[str, ...]

    def allows(self, scope: Scope) -> bool:
        return apikeys.allows(self.scopes, scope)

    def acting_for(self, person: str | None) -> str:
        """Who an audit trail records: the key's name, and the person the client names, if any
        (``ops-console (alice)``); a client cannot pass itself off as another key."""
        who = f"{self.name} ({person})" if person and person != self.name else self.name
        return who[:200]  # what every audit column holds


class ApiKeys:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, cache_ttl: timedelta) -> None:
        self._sessions = sessions
        self._ttl = cache_ttl.total_seconds()
        self._cache: dict[str, tuple[Caller | None, float]] = {}
        """A presented key's digest -> who it is (None: no such live key), until when."""

    async def create(self, name: str, scopes: Iterable[Scope], *, by: str) -> tuple[str, ApiKey]:
        """A new key for ``name``; answers the key itself (shown once, never stored) and its row."""
        name = name.strip()
        chosen = sorted({Scope(s).value for s in scopes})
        if not name:
            raise InvalidInput("a key needs a name: who holds it (checkout-service)")
        if len(name) > 100 or not _NAME.fullmatch(name):
            raise InvalidInput(
                f"key name {name!r}: up to 100 letters, digits, spaces and . _ @ : -, "
                "starting with a letter or digit"
            )
        if not chosen:
            raise InvalidInput(f"a key needs at least one scope: {', '.join(s.value for s in Scope)}")
        key, prefix = apikeys.generate()
        row = ApiKey(prefix=prefix, name=name, scopes=chosen, created_by=by, digest=apikeys.digest(key))
        async with self._sessions() as session:
            session.add(row)
            await session.commit()
            await session.refresh(row)
        log.info("api_key_created", key_prefix=prefix, key_name=name, scopes=chosen, by=by)
        return key, row

    async def list(self, *, revoked: bool = False) -> Sequence[ApiKey]:
        """The live keys, oldest first; with ``revoked``, the revoked ones too."""
        query = select(ApiKey).order_by(col(ApiKey.created_at), col(ApiKey.prefix))
        if not revoked:
            query = query.where(col(ApiKey.revoked_at).is_(None))
        async with self._sessions() as session:
            return (await session.exec(query)).all()

    async def revoke(self, prefix: str, *, by: str) -> ApiKey:
        """Revoke the key with ``prefix`` (its ``nk_`` form is taken too); revoking twice is a no-op.

        Raises:
            NotFound: no key has that prefix.
        """
        prefix = apikeys.prefix_of(prefix) or prefix.removeprefix("nk_").split("_")[0]
        async with self._sessions() as session:
            row = await session.get(ApiKey, prefix, with_for_update=True)
            if row is None:
                raise NotFound(f"no API key with prefix {prefix!r}", kind="api key", name=prefix)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                row.revoked_by = by
                session.add(row)
                await session.commit()
                await session.refresh(row)
                log.info("api_key_revoked", key_prefix=prefix, key_name=row.name, by=by)
        self._cache = {
            d: entry for d, entry in self._cache.items() if entry[0] is None or entry[0].prefix != prefix
        }
        return row

    async def authenticate(self, key: str) -> Caller | None:
        """Who ``key`` belongs to, or None when it is malformed, unknown or revoked."""
        if apikeys.prefix_of(key) is None:
            return None
        presented = apikeys.digest(key)
        now = time.monotonic()
        cached = self._cache.get(presented)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._sessions() as session:
            row = await session.get(ApiKey, apikeys.prefix_of(key))
        caller = None
        if row is not None and row.revoked_at is None and apikeys.matches(key, row.digest):
            caller = Caller(name=row.name, prefix=row.prefix, scopes=tuple(row.scopes))
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[presented] = (caller, now + self._ttl)
        return caller

    async def live(self, prefix: str) -> tuple[Caller, str] | None:
        """The live key with public ``prefix`` and its stored digest (what a dashboard session is
        bound to), or None when there is none or it was revoked."""
        async with self._sessions() as session:
            row = await session.get(ApiKey, prefix)
        if row is None or row.revoked_at is not None:
            return None
        return Caller(name=row.name, prefix=row.prefix, scopes=tuple(row.scopes)), row.digest

    async def ensure_local_admin(self, path: Path) -> bool:
        """Make sure ``path`` holds a live admin key (``nudge up``): keep the one there, or make a
        ``local-admin`` key and write it, readable by its owner only. Answers whether it made one."""
        held = await asyncio.to_thread(_read_key, path)
        caller = await self.authenticate(held) if held else None
        if caller is not None and caller.allows(Scope.ADMIN):
            return False
        key, row = await self.create(LOCAL_ADMIN, [Scope.ADMIN], by="nudge up")
        await asyncio.to_thread(_write_key, path, key)
        log.info("local_admin_key_written", key_prefix=row.prefix, path=str(path))
        return True


def _read_key(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _write_key(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # before the key is in it: a file that existed keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
