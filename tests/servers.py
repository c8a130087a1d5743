"""Serving ASGI apps on loopback inside the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

STARTUP_TIMEOUT = 10.0


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to pytest, so Ctrl-C still stops the run."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve(app: Any, *, port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port (or ``port``, to come back where a stopped server
    was) with its lifespan; yields the base URL.

    The server is stopped, and its lifespan shut down, however the body exits.
    """
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = _Server(config)

    async def run() -> None:
        try:
            await server.serve()
        except SystemExit as exc:
            # uvicorn exits the process when the lifespan fails; inside a task that would stop
            # the whole event loop, so turn it into an ordinary error for the test to see.
            raise RuntimeError(f"server failed to start (exit code {exc.code})") from exc

    task = asyncio.create_task(run())
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT):
            while not server.started:
                if task.done():
                    await task
                    raise RuntimeError("server stopped before it started")
                await asyncio.sleep(0.005)
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        if not server.started:
            task.cancel()  # stuck in its lifespan startup: should_exit is not checked there
        await asyncio.wait({task})
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
