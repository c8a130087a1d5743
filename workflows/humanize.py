"""How a journey names things for people: durations in the UI's details, class names as ids."""

from __future__ import annotations

import re
from datetime import timedelta


def snake(name: str) -> str:
    """``CartAbandonment`` -> ``cart_abandonment``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def human(delta: timedelta) -> str:
    """``1 d 2 h``, ``3 h 5 min``, ``2 min 30 s``, ``45 s``."""
    seconds = int(delta.total_seconds())
    if seconds >= 86400 and seconds % 3600 == 0:
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h".replace(" 0 h", "")
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min".replace(" 0 min", "")
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60} s".replace(" 0 s", "")
    return f"{seconds} s"
