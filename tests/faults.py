"""The production HTTP transport (aiohttp under httpx, as the worker uses it), with the network
faults a test can arm. Unarmed, it passes every request through untouched.

- ``lose_next_send()``: the next ``POST /v1/messages`` reaches the carrier, which accepts it, and
  its answer is lost on our side (a read timeout): the ambiguous failure a retry must reconcile.
- ``losing``: path prefixes on which every POST's answer is lost that way (a failing route).
- ``refuse_next_send(meanwhile)``: the next POST fails to connect, so it never reaches the carrier,
  after running ``meanwhile`` (what a concurrent attempt did in the meantime).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from httpx_aiohttp import AiohttpTransport

CLIENT_TIMEOUT_S = 5.0
"""Long enough for any answer from the in-process simulator on a slow, loaded machine (2 s was
seen to expire under load); a fault that holds an answer holds it three times as long."""
HELD_ANSWER_S = 3 * CLIENT_TIMEOUT_S


class FaultyTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._inner = AiohttpTransport()
        self._lose = 0
        self.losing: set[str] = set()
        self._refuse: list[Callable[[], Awaitable[None]] | None] = []

    def lose_next_send(self) -> None:
        self._lose += 1

    def refuse_next_send(self, meanwhile: Callable[[], Awaitable[None]] | None = None) -> None:
        self._refuse.append(meanwhile)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._refuse and request.method == "POST":
            meanwhile = self._refuse.pop(0)
            if meanwhile is not None:
                await meanwhile()
            raise httpx.ConnectError("connection refused", request=request)
        response = await self._inner.handle_async_request(request)
        if request.method == "POST" and self._loses(request.url.path):
            await response.aread()
            await response.aclose()
            raise httpx.ReadTimeout("the carrier's answer was lost", request=request)
        return response

    def _loses(self, path: str) -> bool:
        if self._lose and path == "/v1/messages":
            self._lose -= 1
            return True
        return any(path.startswith(prefix) for prefix in self.losing)

    async def aclose(self) -> None:
        await self._inner.aclose()
