"""Which requests for a short link are a person's click: link previews, mail and SMS scanners and
crawlers fetch links too, and counting them would inflate click rates and wake journeys for nothing.

A request is a bot's when it is a ``HEAD`` (a checker), when its user agent names a known preview
fetcher or scanner or says nothing at all, or when it comes within ``TOO_SOON`` of the delivery
receipt (a carrier's or handset's scanner opens every link on arrival; a person cannot read the
message that fast). A bot still gets its redirect; it is recorded, but not counted or signalled.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import timedelta
from enum import StrEnum

TOO_SOON = timedelta(seconds=1)

_BOT_AGENTS = re.compile(
    "|".join(
        [
            r"(?<!cu)bot\b",  # Googlebot, Slackbot-LinkExpanding, TelegramBot (not a Cubot handset)
            r"bot/",
            r"crawler",
            r"spider",
            r"preview",  # BingPreview, MicrosoftPreview, SkypeUriPreview, Google Web Preview
            r"scanner",
            r"facebookexternalhit",  # Facebook, and Apple's iMessage link previews
            r"whatsapp",
            r"slack",
            r"telegram",
            r"discord",
            r"headlesschrome",
            r"python-requests",
            r"python-httpx",
            r"go-http-client",
            r"curl/",
            r"wget/",
            r"okhttp",
            r"proofpoint",
            r"mimecast",
            r"barracuda",
            r"urldefense",
        ]
    ),
    re.IGNORECASE,
)


class BotReason(StrEnum):
    HEAD = "head"
    USER_AGENT = "user_agent"
    TOO_SOON = "too_soon"


def bot_reason(*, head: bool, user_agent: str | None, since_delivery: timedelta | None) -> BotReason | None:
    """Why this request is not a person's click, or None when it is one.

    Args:
        head: The request was a ``HEAD``.
        user_agent: Its ``User-Agent`` header.
        since_delivery: Time from the delivery receipt (or, without one, the send) to the request.
    """
    if head:
        return BotReason.HEAD
    if not user_agent or not user_agent.strip() or _BOT_AGENTS.search(user_agent):
        return BotReason.USER_AGENT
    if since_delivery is not None and since_delivery < TOO_SOON:
        return BotReason.TOO_SOON
    return None


def ip_hash(key: bytes, address: str | None) -> str | None:
    """A keyed hash of a client address: the same address hashes alike (to count distinct
    clickers), but without the key the 2^32 IPv4 addresses cannot be tried one by one."""
    if not address:
        return None
    return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()[:32]
