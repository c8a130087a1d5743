"""Connecting to Temporal, the same way everywhere (the pydantic data converter)."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from nudge.converter import data_converter
from nudge.settings import Settings


async def connect(settings: Settings, *, wait: float = 0.0) -> Client:
    """Connect to Temporal; with ``wait``, keep trying that many seconds while it starts."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=data_converter,
            )
        except RuntimeError:
            if asyncio.get_running_loop().time() >= deadline:
                raise
            await asyncio.sleep(0.5)
