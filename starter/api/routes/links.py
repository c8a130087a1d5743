"""Short links: every request recorded, a person's click counted, then redirected to the link's
target. A bot's request (a HEAD, a preview fetcher, a scanner) is redirected but not counted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.responses import RedirectResponse

from starter.api.auth import NOT_FOUND
from starter.api.deps import ClicksDep
from starter.api.services import clicks as click_service

router = APIRouter(tags=["links"], responses=NOT_FOUND)


async def _follow(code: str, clicks: ClicksDep, request: Request, user_agent: str | None) -> Response:
    target = await clicks.follow(
        code,
        click_service.Request(
            head=request.method == "HEAD",
            user_agent=user_agent,
            address=request.client.host if request.client else None,
        ),
    )
    if target is None:
        raise HTTPException(404, detail=f"unknown link code {code!r}")
    return RedirectResponse(target, status_code=302)


@router.get("/l/{code}", response_class=RedirectResponse, status_code=302)
async def short_link(
    code: str, clicks: ClicksDep, request: Request, user_agent: Annotated[str | None, Header()] = None
) -> Response:
    """Record a click and redirect to the link's target."""
    return await _follow(code, clicks, request, user_agent)


@router.head("/l/{code}", response_class=RedirectResponse, status_code=302)
async def short_link_head(
    code: str, clicks: ClicksDep, request: Request, user_agent: Annotated[str | None, Header()] = None
) -> Response:
    """Answer as GET does (302 to the target, or 404), recorded as a bot's request and never
    counted: link previews and checkers send HEAD."""
    return await _follow(code, clicks, request, user_agent)
