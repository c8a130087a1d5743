"""Short links: a click is recorded, then redirected to the link's target."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response
from fastapi.responses import RedirectResponse

from starter.api.auth import NOT_FOUND
from starter.api.deps import ClicksDep

router = APIRouter(tags=["links"], responses=NOT_FOUND)


@router.get("/l/{code}", response_class=RedirectResponse, status_code=302)
async def short_link(
    code: str, clicks: ClicksDep, user_agent: Annotated[str | None, Header()] = None
) -> Response:
    """Record a click and redirect to the link's target."""
    target = await clicks.follow(code, user_agent=user_agent)
    if target is None:
        raise HTTPException(404, detail=f"unknown link code {code!r}")
    return RedirectResponse(target, status_code=302)


@router.head("/l/{code}", response_class=RedirectResponse, status_code=302)
async def short_link_head(code: str, clicks: ClicksDep) -> Response:
    """Answer as GET does (302 to the target, or 404) without counting a click: link previews and
    checkers send HEAD."""
    target = await clicks.target(code)
    if target is None:
        raise HTTPException(404, detail=f"unknown link code {code!r}")
    return RedirectResponse(target, status_code=302)
