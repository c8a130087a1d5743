"""Reply keywords: opt-out, opt-in and help, in English (CTIA, FCC) and Chinese (MIIT) usage.

Matching is on the whole reply, trimmed and case-insensitive, as carriers and Twilio do it.
"""

from __future__ import annotations

from typing import Literal

Keyword = Literal["stop", "start", "help"]

STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"}
    | {"R", "TD", "T", "N", "退订", "取消", "拒收"}
)
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def classify_reply(text: str) -> Keyword | None:
    """``stop``, ``start`` or ``help`` when the whole reply is one of their keywords, else None."""
    word = " ".join(text.split()).upper().rstrip(".!")
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None
