"""Pauses over HTTP: what is paused, a pause by hand (only of something a pause can hold), a
resume, and the audit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance import pauses
from activities.compliance.pauses import Scope, Source
from activities.compliance.registry import Registry
from nudge.errors import InvalidInput
from nudge.models import Category
from nudge.store import Pause, PauseEvent


class UnknownPauseTarget(InvalidInput):
    """A pause would hold nothing: no such template, journey or route, or a transactional one."""

    def __init__(self, message: str, *, scope: Scope, value: str) -> None:
        super().__init__(message)
        self.scope = scope
        self.value = value


class Pauses:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        registry: Registry,
        journeys: Mapping[str, Category],
        routes: Sequence[str],
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._journeys = journeys
        """Every journey's category, by name."""
        self._routes = routes
        """The configured routes' names."""

    async def current(self) -> Sequence[Pause]:
        """The pauses in effect, oldest first."""
        return await pauses.current_pauses(self._sessions)

    async def pause(self, *, scope: Scope, value: str, reason: str, by: str) -> Pause:
        """Pause a scope by hand.

        Raises:
            UnknownPauseTarget: the template, journey or route does not exist (a typo would pause
                nothing), or it is transactional.
            AlreadyPaused: it is paused already.
        """
        if (problem := await self._unknown(scope, value)) is not None:
            raise UnknownPauseTarget(problem, scope=scope, value=value)
        return await pauses.pause(
            self._sessions, scope=scope, value=value, reason=reason, source=Source.MANUAL, by=by
        )

    async def resume(self, *, scope: Scope, value: str, reason: str | None, by: str) -> Pause:
        """Resume a scope; returns the pause that was lifted.

        Raises:
            NotPaused: it was not paused.
        """
        return await pauses.resume(self._sessions, scope=scope, value=value, reason=reason, by=by)

    async def history(self, *, limit: int) -> Sequence[PauseEvent]:
        """Every pause and resume, newest first."""
        return await pauses.pause_history(self._sessions, limit=limit)

    async def _unknown(self, scope: Scope, value: str) -> str | None:
        """Why ``value`` names nothing a pause could hold: no such template, journey or route, or a
        transactional one (pauses hold marketing only). None when it does, and for signatures."""
        if scope is Scope.TEMPLATE:
            variants = await self._registry.templates(code=value)
            if not variants:
                return f"unknown template {value!r}"
            if all(v.category == Category.TRANSACTIONAL.value for v in variants):
                return f"template {value!r} is transactional: pauses hold marketing sends only"
        elif scope is Scope.JOURNEY:
            if value not in self._journeys:
                return f"unknown journey {value!r}; known: {', '.join(sorted(self._journeys))}"
            if self._journeys[value] is Category.TRANSACTIONAL:
                return f"journey {value!r} is transactional: pauses hold marketing sends only"
        elif scope is Scope.ROUTE and value not in self._routes:
            return f"unknown route {value!r}; known: {', '.join(self._routes)}"
        return None
