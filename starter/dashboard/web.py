"""What every dashboard page shares: the templates, the viewer behind the session cookie, the
security headers, and the parsing of the filters people type into forms."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from nudge.errors import InvalidInput
from nudge.logging import get_logger
from nudge.store import utcnow
from starter.api.deps import ServicesDep
from starter.dashboard import session
from starter.dashboard.session import Viewer

log = get_logger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
HEADERS = {
    # Every asset is Nudge's own: no CDN, no inline script, no framing.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


class BadFilter(InvalidInput):
    """A filter typed into a form that does not parse; the page says which."""


def secret(request: Request) -> bytes:
    """The key the session cookies are signed with (``NUDGE_DASHBOARD_SECRET``, else derived from
    the codec keys, else one made for this process)."""
    key: bytes | None = getattr(request.app.state, "dashboard_secret", None)
    if key is None:
        services = request.app.state.services
        key = services.settings.session_key
        if key is None:
            key = secrets.token_bytes(32)
            log.warning("dashboard_secret_generated", why="no NUDGE_DASHBOARD_SECRET and no codec keys")
        request.app.state.dashboard_secret = key
    return key


async def current_viewer(request: Request, services: ServicesDep) -> Viewer:
    """The viewer behind the cookie; anyone else is sent to the login page, then back here."""
    cookie = request.cookies.get(session.COOKIE)
    viewer = await session.verify(secret(request), cookie, keys=services.keys, now=utcnow())
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(
            303, detail="log in first", headers={"Location": f"/dashboard/login?next={quote(target)}"}
        )
    return viewer


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def check_csrf(viewer: Viewer, token: str) -> None:
    if not secrets.compare_digest(viewer.csrf, token):
        raise HTTPException(403, detail="the form's token does not match this session: reload the page")


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(HEADERS)
    return response


def parse_time(value: str | None, field: str) -> datetime | None:
    """A time from a form: ISO 8601, with an offset or in UTC (what ``datetime-local`` sends)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadFilter(f"{field}: not a time (use 2026-12-01T09:00, in UTC)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def blank_to_none(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def safe_next(target: str | None) -> str:
    """Only a dashboard page of this gateway: never another host (``//evil``, ``/dashboard\\..``)."""
    if not target or not target.startswith("/dashboard") or "\\" in target or target.startswith("//"):
        return "/dashboard"
    return target
