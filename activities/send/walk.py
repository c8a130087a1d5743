"""The walk over a message's candidate routes, shared by the journey's dispatch (``dispatch.py``)
and a broadcast batch's (``activities/broadcast/dispatch.py``).

The candidates are the routes whose rules match the recipient, best first. On each, a message may
board when the route's signature for it is approved in the registry and, for marketing, no pause
holds the route or that signature; it goes when, besides, the route's circuit breaker lets calls
through. The breaker is asked last, and only when someone would go: in its half-open state,
asking takes the one probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from activities.compliance.pauses import PauseCache
from activities.compliance.registry import Registry
from activities.routing import Recipient, Route, Router
from nudge.models import Category, SendRequest
from nudge.store import Message, Pause
from nudge.templates import Template

from .compose import is_marketing, signature
from .gate import find_pause


@dataclass(slots=True)
class Rider:
    """One message looking for a route, and what the walk learnt of the routes it was offered."""

    request: SendRequest
    message: Message
    template: Template
    language: str | None
    signatures: dict[str, str] = field(default_factory=dict)
    """Its signature on each route asked about, by route name."""
    approved: dict[str, bool] = field(default_factory=dict)
    """Whether that signature is approved, by route name."""
    held: dict[str, Pause] = field(default_factory=dict)
    """The pause that held it on a route, by route name."""

    @property
    def marketing(self) -> bool:
        return is_marketing(self.request, self.template)

    @property
    def any_approved(self) -> bool:
        """Some route it was offered signs it with an approved signature."""
        return any(self.approved.values())


class RouteWalk:
    """The routes a message may take, and which of them may carry it now.

    Args:
        router: the configured routes and their rules.
        registry: the signatures' approval.
        pauses: the paused routes and signatures.
    """

    def __init__(self, *, router: Router, registry: Registry, pauses: PauseCache) -> None:
        self._router = router
        self._registry = registry
        self._pauses = pauses

    def candidates(
        self, to: Recipient, template: Template, category: Category, *, forced: str | None
    ) -> list[Route]:
        """The routes whose rules match, best first. Raises ``NoRoute`` when none does."""
        return self._router.candidates(to, template, category, forced=forced)

    async def approved(self, route: Route, rider: Rider) -> bool:
        """Is the rider's signature on ``route`` approved? Asked once per route and rider."""
        if route.name not in rider.approved:
            name = signature(rider.request, rider.template, route, rider.language)
            rider.signatures[route.name] = name
            rider.approved[route.name] = await self._registry.signature_approved(name)
        return rider.approved[route.name]

    async def board(self, route: Route, riders: Sequence[Rider]) -> tuple[list[Rider], list[Rider]]:
        """The riders ``route`` carries now, and the others (for the next route), in their order.

        A rider whose signature is not approved there, or whom a pause holds there, stays off;
        when its breaker is open nobody boards.
        """
        ready: list[Rider] = []
        others: list[Rider] = []
        for rider in riders:
            (ready if await self._fits(route, rider) else others).append(rider)
        if ready and not route.breaker.allow():
            return [], others + ready
        return ready, others

    async def _fits(self, route: Route, rider: Rider) -> bool:
        if not await self.approved(route, rider):
            return False
        if rider.marketing:
            paused = await find_pause(
                self._pauses, rider.message, route=route.name, signature=rider.signatures[route.name]
            )
            if paused is not None:
                rider.held[route.name] = paused  # like an open breaker, except that it lasts until resumed
                return False
        return True
