"""Segment counting the way carriers bill it: GSM-7 160/153, UCS-2 70/67."""

from __future__ import annotations

_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def count_segments(text: str) -> int:
    """How many billed parts ``text`` takes as one SMS (GSM-7 160/153, else UCS-2 70/67).

    In a long message an escape pair (GSM-7 extension character) or a surrogate pair (emoji)
    never straddles two parts, so a part may hold 152 septets or 66 units.
    """
    if not text:
        return 1
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        weights = [2 if c in _GSM_EXTENDED else 1 for c in text]
        single, part = 160, 153
    else:
        weights = [2 if ord(c) > 0xFFFF else 1 for c in text]
        single, part = 70, 67
    if sum(weights) <= single:
        return 1
    parts, used = 1, 0
    for weight in weights:
        if used + weight > part:
            parts, used = parts + 1, 0
        used += weight
    return parts


def count_mainland_segments(text: str, *, signature: str) -> int:
    """Parts billed by mainland-China providers (Aliyun, Tencent) for one message.

    The signature counts as the platform adds it, in 【】 brackets. Every character counts one,
    whatever its width: 70 fit one message, and a longer one is billed in parts of 67.
    """
    length = len(f"【{signature}】") + len(text)
    return 1 if length <= 70 else -(-length // 67)


def count_billed_segments(text: str, *, provider: str, to: str, signature: str) -> int:
    """Segments the way ``provider`` bills a message to ``to`` (E.164)."""
    if provider in ("aliyun", "tencent") and to.startswith("+86"):
        return count_mainland_segments(text, signature=signature)
    return count_segments(text)
