"""The dashboard's session: an API key typed once into the login page becomes a signed cookie.

The cookie is ``<key prefix>.<expiry>.<signature>``, signed with the dashboard's secret over the
prefix, the expiry and the key's stored digest. It never holds the key itself, and it dies with
the key: a revoked key has no live row, and a key made again under the same prefix has another
digest. Forms carry a token derived from the cookie (``csrf``), and the cookie is ``SameSite=Strict``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from nudge.apikeys import Scope
from starter.api.services.keys import ApiKeys, Caller

COOKIE = "nudge_session"
_EXPIRY = re.compile(r"[0-9]{1,12}")
"""Unix seconds in ASCII digits (``str.isdigit`` would take ``²``, which ``int`` refuses)."""


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the key's caller, and the token their forms must carry."""

    caller: Caller
    csrf: str

    @property
    def admin(self) -> bool:
        return self.caller.allows(Scope.ADMIN)


def _mac(secret: bytes, text: str) -> str:
    digest = hmac.new(secret, text.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue(secret: bytes, *, prefix: str, digest: str, now: datetime, ttl: timedelta) -> str:
    """The cookie for the key with ``prefix`` and stored ``digest``, valid for ``ttl``."""
    expires = int((now + ttl).timestamp())
    return f"{prefix}.{expires}.{_mac(secret, f'{prefix}.{expires}.{digest}')}"


def csrf_token(secret: bytes, cookie: str) -> str:
    return _mac(secret, f"csrf.{cookie}")


async def verify(secret: bytes, cookie: str | None, *, keys: ApiKeys, now: datetime) -> Viewer | None:
    """The viewer a cookie stands for, or None: malformed, forged, expired, or its key revoked."""
    if not cookie:
        return None
    parts = cookie.split(".")
    if len(parts) != 3 or not _EXPIRY.fullmatch(parts[1]):
        return None
    prefix, expires, signature = parts
    if int(expires) <= now.timestamp():
        return None
    found = await keys.live(prefix)
    if found is None:
        return None
    caller, digest = found
    if not hmac.compare_digest(signature, _mac(secret, f"{prefix}.{expires}.{digest}")):
        return None
    if not caller.allows(Scope.READ):
        return None
    return Viewer(caller=caller, csrf=csrf_token(secret, cookie))
