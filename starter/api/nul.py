"""NUL (U+0000) is refused at the edge, in the path, the query and the body, with the one 422.

No id, text or number Nudge takes can hold one, and PostgreSQL cannot store one in a text column:
a NUL that got through would answer 500 there (schemathesis found it, in a customer's name) and be
stored on SQLite. Checking the bytes once here covers every route, the webhooks included, where
a field pattern on each model would miss the next new field.
"""

from __future__ import annotations

import json
import re

from starter.api.limits import ASGIApp, Receive, Scope, Send, replaying

JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)
"""``\\u0000`` in JSON text: an escape not itself escaped (``\\\\u0000`` is a backslash and text)."""
MESSAGE = "must not contain NUL (U+0000)"


def has_nul(data: bytes, *, encoded: bool) -> bool:
    """A raw NUL; percent-encoded (``encoded``: a query or a form) or JSON-escaped."""
    if b"\x00" in data:
        return True
    return b"%00" in data if encoded else JSON_NUL.search(data) is not None


class RefuseNul:
    """ASGI middleware: 422 for a request with NUL anywhere; the body is read (it is already capped
    by ``BodyLimit``), checked, then handed on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"]:
            await _refuse(send, "path")
            return
        if has_nul(scope.get("query_string") or b"", encoded=True):
            await _refuse(send, "query")
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away mid-body
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        form = (
            dict(scope.get("headers") or [])
            .get(b"content-type", b"")
            .startswith(b"application/x-www-form-urlencoded")
        )
        if has_nul(body, encoded=form):
            await _refuse(send, "body")
            return
        await self.app(scope, replaying(body, receive), send)


async def _refuse(send: Send, where: str) -> None:
    error = {"loc": [where], "msg": f"the {where} {MESSAGE}", "type": "string_nul"}
    body = json.dumps({"detail": [error]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
