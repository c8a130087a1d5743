"""A tiny webhook receiver for tests: it keeps every JSON body posted to it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI, Request, Response


class Inbox:
    """Serve ``app`` (``tests.servers.serve``); every JSON body posted to any path lands in
    ``received``. ``status`` is what it answers, so a test can make it fail."""

    def __init__(self, *, status: int = 204) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = status
        self.url = ""
        """Where the test serves it (set by the test)."""
        self.app = FastAPI()

        @self.app.post("/{path:path}", status_code=204)
        async def receive(request: Request) -> Response:
            self.received.append(await request.json())
            return Response(status_code=self.status)

    async def wait_for(self, count: int = 1, *, timeout: float = 10) -> list[dict[str, Any]]:
        """The bodies received, once there are at least ``count``; fails after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} of {count} posts arrived within {timeout} s")
            await asyncio.sleep(0.05)
        return self.received
