"""The one shape of a 422: ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}``.

FastAPI's default echoes each field's input back, which cannot be encoded when the input is a
non-finite number (a 500 instead of the 422), and would repeat a phone number or a name into a
client's logs. This answer names the field and the reason only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

UNREADABLE_BODY = "There was an error parsing the body"
"""FastAPI's 400 for a body it cannot decode (JSON that is not UTF-8); answered as the 422 it is."""


class FieldError(BaseModel):
    loc: list[str | int]
    """Where: ``["body", "properties"]``, ``["path", "customer_id"]``."""
    msg: str
    type: str


class ValidationProblem(BaseModel):
    """A request that does not fit the schema: one entry per field."""

    detail: list[FieldError]


def invalid(
    message: str, *, loc: Sequence[str | int] = ("body",), kind: str = "value_error"
) -> RequestValidationError:
    """A 422 the route decides (a rule the schema cannot say), in the same shape as the schema's."""
    return RequestValidationError([{"loc": tuple(loc), "msg": message, "type": kind}])


def field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]


async def http_problem(request: Request, exc: Exception) -> Response:
    """FastAPI's own answers, except its 400 for an undecodable body: a 422 in the one shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.detail == UNREADABLE_BODY:
        error = {"loc": ["body"], "msg": "the body is not JSON in UTF-8", "type": "json_invalid"}
        return JSONResponse(status_code=422, content={"detail": [error]})
    return await http_exception_handler(request, exc)


async def validation_problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": field_errors(exc)}))
