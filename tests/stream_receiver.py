"""A stream webhook receiver for tests, on loopback: it checks every signature, keeps every
request as received, and can be stopped and started again on the same port."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response

from nudge.stream_signature import HEADER, InvalidStreamSignature, verify
from tests.servers import serve

SECRET = "stream-secret-for-tests"


@dataclass(frozen=True, slots=True)
class Posted:
    """One request as the receiver got it."""

    body: bytes
    signature: str | None
    content_type: str | None
    valid: bool
    """Whether its signature verified against the raw body under the receiver's secret."""

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = json.loads(self.body)["events"]
        return events


class Receiver:
    """Serve with ``start`` (a free port the first time, the same one after ``stop``). A request
    whose signature does not verify gets 401; ``status`` is what a valid one gets (a test sets an
    error to make the receiver take a batch and then lose its answer)."""

    def __init__(self, *, secret: str = SECRET) -> None:
        self.secret = secret
        self.posted: list[Posted] = []
        self.status = 204
        self.port = 0
        self._running: contextlib.AsyncExitStack | None = None
        self.app = FastAPI()

        @self.app.post("/hook")
        async def receive(request: Request) -> Response:
            body = await request.body()
            signature = request.headers.get(HEADER)
            try:
                verify(self.secret, signature, body)
                valid = True
            except InvalidStreamSignature:
                valid = False
            self.posted.append(Posted(body, signature, request.headers.get("content-type"), valid))
            return Response(status_code=self.status if valid else 401)

    @property
    def running(self) -> bool:
        return self._running is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        assert self._running is None, "already running"
        stack = contextlib.AsyncExitStack()
        base = await stack.enter_async_context(serve(self.app, port=self.port))
        self.port = urlsplit(base).port or 0
        self._running = stack

    async def stop(self) -> None:
        """Shut the server down: from now on connections to its port are refused."""
        assert self._running is not None, "not running"
        await self._running.aclose()
        self._running = None

    def events(self) -> list[dict[str, Any]]:
        """Every event of every valid request, repeats included, in arrival order."""
        return [event for posted in self.posted if posted.valid for event in posted.events]

    def unique(self) -> dict[str, dict[str, Any]]:
        """The events as a receiver deduplicating by id keeps them."""
        return {event["id"]: event for event in self.events()}
