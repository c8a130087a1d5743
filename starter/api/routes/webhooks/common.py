"""What the Aliyun and Tencent callbacks share: the secret token in their URLs (neither signs
its pushes), their Beijing-time stamps, and the refusal to start with the development token
where it would guard real providers."""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import HTTPException, Path

from activities.providers._http import beijing_time
from nudge.errors import ConfigurationError
from nudge.logging import get_logger
from nudge.settings import DEV_CALLBACK_TOKEN, Settings

log = get_logger(__name__)
__all__ = ["Token", "beijing_time", "check_callback_token", "check_token"]
Token = Annotated[str, Path(description="The secret callback token (NUDGE_CALLBACK_TOKEN)")]


def check_token(token: str, settings: Settings) -> None:
    """403 unless ``token`` is the callback token."""
    if not hmac.compare_digest(token.encode(), settings.callback_token.get_secret_value().encode()):
        log.warning("webhook_rejected", reason="bad callback token")
        raise HTTPException(403, detail="unknown callback token")


def check_callback_token(settings: Settings) -> None:
    """Refuse to take real Aliyun or Tencent receipts with the development token: anyone could
    forge them (and suppress numbers with forged replies). On loopback it only matters less.

    Raises:
        ConfigurationError: a real Aliyun or Tencent route is configured and the token is the default.
    """
    if settings.callback_token.get_secret_value() != DEV_CALLBACK_TOKEN:
        return
    real = [
        r.name
        for r in settings.effective_routes
        if r.provider in ("aliyun", "tencent") and not _is_loopback(r.endpoint)
    ]
    if real:
        raise ConfigurationError(
            f"NUDGE_CALLBACK_TOKEN is the development default, but routes {', '.join(real)} send through "
            "real providers whose receipts it would protect; set NUDGE_CALLBACK_TOKEN to a secret"
        )
    if not _is_loopback(settings.gateway_url):
        log.warning(
            "callback_token_is_the_default",
            detail="set NUDGE_CALLBACK_TOKEN: the Aliyun and Tencent receipt URLs are as secret as it is",
        )


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")
