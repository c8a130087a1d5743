from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from tests.servers import serve


def app_with_lifespan(events: list[str], *, fail_startup: bool = False) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("startup")
        if fail_startup:
            raise RuntimeError("database unreachable")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


async def test_serve_runs_lifespan_and_answers_on_loopback() -> None:
    """serve() answers HTTP on a 127.0.0.1 port between lifespan startup and shutdown."""
    events: list[str] = []
    async with serve(app_with_lifespan(events)) as url, httpx.AsyncClient(trust_env=False) as http:
        assert url.startswith("http://127.0.0.1:")
        assert (await http.get(f"{url}/ping")).json() == {"pong": "yes"}
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


async def test_serve_stops_server_when_body_fails() -> None:
    """An error inside the block still shuts the server down and closes its port."""
    events: list[str] = []
    with pytest.raises(ZeroDivisionError):
        async with serve(app_with_lifespan(events)) as url:
            1 / 0  # noqa: B018
    assert events == ["startup", "shutdown"]
    async with httpx.AsyncClient(trust_env=False) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{url}/ping")


async def test_serve_lifespan_failure_raises_instead_of_exiting() -> None:
    """A failing lifespan startup is an ordinary error for the test, not a SystemExit."""
    events: list[str] = []
    with pytest.raises(RuntimeError, match="server failed to start"):
        async with serve(app_with_lifespan(events, fail_startup=True)):
            pytest.fail("the body must not run when the server did not start")
    assert events == ["startup"]
