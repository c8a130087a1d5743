"""The dashboard's pages that act: logging in and out, experiments (conclude) and pauses (resume).
Acting needs an ``admin`` key and the form's token; a ``read`` key sees the buttons disabled."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from activities.compliance.pauses import NotPaused, Scope
from nudge import apikeys
from nudge.apikeys import Scope as KeyScope
from nudge.experiments import Metric
from nudge.logging import get_logger
from nudge.store import utcnow
from starter.api.deps import ExperimentsDep, PausesDep, ServicesDep
from starter.api.services.experiments import AlreadyConcluded, UnknownExperiment, UnknownVariant
from starter.dashboard import charts, session
from starter.dashboard.web import ViewerDep, check_csrf, render, safe_next, secret

log = get_logger(__name__)
router = APIRouter(prefix="/dashboard", include_in_schema=False)
Token = Annotated[str, Form(max_length=200)]
DASHBOARD = "dashboard"
"""Who an audit trail records beside the key's name (``ops (dashboard)``)."""


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _cross_site(request: Request) -> bool:
    """Whether a form was posted from another site: the browser says so (``Sec-Fetch-Site``), or
    its ``Origin`` is not this gateway's."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != request.url.netloc


def _back(page: str, message: str) -> RedirectResponse:
    """Back to ``page``, which shows ``message`` (what the action did, or why it did not)."""
    return RedirectResponse(f"{page}?{urlencode({'message': message})}", status_code=303)


def _admin_only(viewer: session.Viewer) -> None:
    if not viewer.admin:
        raise HTTPException(403, detail=f"the key {viewer.caller.name!r} is not an admin key")


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", next=safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse, response_model=None)
async def login(
    request: Request,
    services: ServicesDep,
    key: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=2000)] = "/dashboard",
) -> HTMLResponse | RedirectResponse:
    """Trade a ``read`` or ``admin`` key for a session cookie (the key itself is not kept)."""
    if _cross_site(request):
        # Another site's form would log the browser in with its own key (login CSRF).
        log.warning("dashboard_login_refused", reason="cross-site form", client=_client(request))
        return render(request, "login.html", status=403, next="/dashboard", error="Log in from this page.")
    key = key.strip()
    caller = await services.keys.authenticate(key)
    found = await services.keys.live(caller.prefix) if caller is not None else None
    if caller is None or found is None or not caller.allows(KeyScope.READ):
        log.warning(
            "dashboard_login_refused",
            key_prefix=apikeys.prefix_of(key) or "malformed",
            reason="unknown, revoked or malformed" if caller is None else "needs a read or admin key",
            client=_client(request),
        )
        error = (
            "That key is unknown or revoked." if caller is None else "That key has no read or admin scope."
        )
        return render(request, "login.html", status=401, next=safe_next(next), error=error)
    settings = services.settings
    cookie = session.issue(
        secret(request), prefix=caller.prefix, digest=found[1], now=utcnow(), ttl=settings.dashboard_session
    )
    log.info("dashboard_login", key_name=caller.name, key_prefix=caller.prefix, client=_client(request))
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        session.COOKIE,
        cookie,
        max_age=int(settings.dashboard_session.total_seconds()),
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" or settings.public_url.startswith("https://"),
    )
    return response


@router.post("/logout")
async def logout(viewer: ViewerDep, csrf: Token) -> RedirectResponse:
    check_csrf(viewer, csrf)
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(session.COOKIE, path="/dashboard")
    return response


@router.get("/experiments", response_class=HTMLResponse)
async def experiments_page(request: Request, viewer: ViewerDep, experiments: ExperimentsDep) -> HTMLResponse:
    """Every experiment with its verdict in words."""
    reports = [await experiments.report(e.name) for e in await experiments.list()]
    return render(request, "experiments.html", viewer=viewer, page="experiments", reports=reports)


@router.get("/experiments/{name}", response_class=HTMLResponse)
async def experiment_page(
    request: Request, name: str, viewer: ViewerDep, experiments: ExperimentsDep, metric: Metric | None = None
) -> HTMLResponse:
    """One experiment: per variant exposures, rate and interval, probability to be best, the
    comparisons with the control, and the conclude form."""
    try:
        report = await experiments.report(name, metric=metric)
    except UnknownExperiment as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    return render(
        request,
        "experiment.html",
        viewer=viewer,
        page="experiments",
        report=report,
        metrics=list(Metric),
        variant_chart=charts.variant_rates(report.verdict),
        message=request.query_params.get("message"),
    )


@router.post("/experiments/{name}/conclude")
async def conclude(
    name: str,
    viewer: ViewerDep,
    experiments: ExperimentsDep,
    csrf: Token,
    winner: Annotated[str, Form(max_length=100)],
) -> RedirectResponse:
    check_csrf(viewer, csrf)
    _admin_only(viewer)
    try:
        await experiments.conclude(name, winner=winner, by=viewer.caller.acting_for(DASHBOARD))
    except UnknownExperiment as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    except (UnknownVariant, AlreadyConcluded) as exc:
        return _back(f"/dashboard/experiments/{quote(name)}", str(exc))
    return _back(f"/dashboard/experiments/{quote(name)}", f"concluded: everyone gets {winner} from now on")


@router.get("/pauses", response_class=HTMLResponse)
async def pauses_page(request: Request, viewer: ViewerDep, pauses: PausesDep) -> HTMLResponse:
    """What is paused now, and the alerts: every pause and resume, newest first."""
    return render(
        request,
        "pauses.html",
        viewer=viewer,
        page="pauses",
        paused=await pauses.current(),
        history=await pauses.history(limit=50),
        message=request.query_params.get("message"),
    )


@router.post("/pauses/resume")
async def resume(
    viewer: ViewerDep,
    pauses: PausesDep,
    csrf: Token,
    scope: Annotated[Scope, Form()],
    value: Annotated[str, Form(max_length=200)],
) -> RedirectResponse:
    check_csrf(viewer, csrf)
    _admin_only(viewer)
    try:
        await pauses.resume(
            scope=scope,
            value=value,
            reason="resumed on the dashboard",
            by=viewer.caller.acting_for(DASHBOARD),
        )
    except NotPaused as exc:
        return _back("/dashboard/pauses", str(exc))
    return _back("/dashboard/pauses", f"resumed {scope.value} {value}")
