"""The carrier simulator's control API, as tests drive it: configure faults, read its ledger."""

from __future__ import annotations

from typing import Any

import httpx


async def configure(http: httpx.AsyncClient, carrier: str, **update: Any) -> None:
    """Change the simulator's behaviour (``simulator/config.py``: latency, faults, click rates...)."""
    response = await http.post(f"{carrier}/_sim/config", json=update)
    assert response.status_code == 200, response.text


async def ledger(http: httpx.AsyncClient, carrier: str, **filters: str) -> list[dict[str, Any]]:
    """Every message the carrier accepted, in order (``to=``, ``provider=`` narrow it)."""
    response = await http.get(f"{carrier}/_sim/ledger", params=filters)
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()
    return entries
