"""Waiting for something to happen in a test: poll with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], *, what: str, timeout: float = 10, every: float = 0.02
) -> None:
    """Return as soon as ``condition()`` holds (it may be async); fail naming ``what`` once
    ``timeout`` seconds have gone by without it.

    A fixed sleep is too short on a slow machine and wastes time on a fast one; the deadline here is
    only the point at which the test gives up.
    """
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(every)
