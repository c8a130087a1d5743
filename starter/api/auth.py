"""Who may call a route: ``Authorization: Bearer nk_...`` and the scope the route needs.

Every route outside the public ones (provider webhooks, ``GET /l/{code}``, ``/healthz``) takes one
of ``EventsCaller``, ``ReadCaller`` or ``AdminCaller``, and its router declares ``AUTH_ERRORS``.

- no key, a malformed, unknown or revoked one: 401, with ``WWW-Authenticate: Bearer``;
- a live key without the scope: 403, with ``error="insufficient_scope"``.

Neither reaches the route, so neither changes state; both are logged with the key's public prefix
(never the key) and the client's address.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from nudge import apikeys
from nudge.apikeys import Scope
from nudge.logging import get_logger
from starter.api.deps import ServicesDep
from starter.api.services.keys import Caller

log = get_logger(__name__)

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    bearerFormat="nk_<prefix>_<secret>",
    description="An API key from `nudge keys create`, as `Authorization: Bearer nk_...`.",
)


class Problem(BaseModel):
    """Why a request was refused."""

    detail: str


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No API key, or one that is malformed, unknown or revoked."},
    403: {"model": Problem, "description": "The key lacks the scope this route needs."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No such entry."}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The entry's state does not allow this step."}
}
STEP_ERRORS = {**NOT_FOUND, **CONFLICT}
"""A review step's refusals: no such entry, or a state that does not allow the step."""


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@cache
def require(scope: Scope) -> Any:
    """The dependency for routes that need ``scope`` (one per scope, so that a route and its router
    asking for the same one check the key once)."""

    async def caller(
        request: Request,
        services: ServicesDep,
        credentials: HTTPAuthorizationCredentials | None,
    ) -> Caller:
        if credentials is None:
            log.warning("api_key_refused", reason="missing", client=_client(request), path=request.url.path)
            raise HTTPException(
                401,
                detail="an API key is required: send `Authorization: Bearer nk_...` (nudge keys create)",
                headers={"WWW-Authenticate": 'Bearer realm="nudge"'},
            )
        key = credentials.credentials
        found = await services.keys.authenticate(key)
        if found is None:
            log.warning(
                "api_key_refused",
                reason="unknown, revoked or malformed",
                key_prefix=apikeys.prefix_of(key) or "malformed",
                client=_client(request),
                path=request.url.path,
            )
            raise HTTPException(
                401,
                detail="the API key is unknown, revoked or malformed",
                headers={"WWW-Authenticate": 'Bearer realm="nudge", error="invalid_token"'},
            )
        if not found.allows(scope):
            log.warning(
                "api_key_refused",
                reason=f"lacks scope {scope.value}",
                key_prefix=found.prefix,
                key_name=found.name,
                client=_client(request),
                path=request.url.path,
            )
            raise HTTPException(
                403,
                detail=f"the key {found.name!r} (nk_{found.prefix}) lacks the {scope.value} scope this needs",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope.value}"'},
            )
        return found

    caller.__name__ = f"require_{scope.value}"
    # The scope shows in the schema's security requirement (OpenAPI 3.1 lets a bearer scheme list
    # roles), so /docs and clients see what each operation needs. Set here, as an object: a string
    # annotation could not see ``scope``.
    caller.__annotations__["credentials"] = Annotated[
        HTTPAuthorizationCredentials | None, Security(bearer, scopes=[scope.value])
    ]
    return caller


EventsCaller = Annotated[Caller, Depends(require(Scope.EVENTS))]
ReadCaller = Annotated[Caller, Depends(require(Scope.READ))]
AdminCaller = Annotated[Caller, Depends(require(Scope.ADMIN))]


NEEDS_EVENTS = [Depends(require(Scope.EVENTS))]
NEEDS_READ = [Depends(require(Scope.READ))]
NEEDS_ADMIN = [Depends(require(Scope.ADMIN))]
"""``dependencies=NEEDS_READ``, for a route that needs the scope but not the caller."""
