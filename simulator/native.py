"""The simulator's own JSON API, spoken by ``activities/providers/simulator.py``.

- ``POST /v1/messages`` ``{client_ref, to, from, body, status_callback}`` -> ``{id, status, segments}``
- ``GET /v1/messages?client_ref=...`` finds a message sent earlier (for reconciliation)
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from nudge.segments import count_segments
from simulator.callbacks import Callback
from simulator.carrier import CarrierDep
from simulator.config import SimConfig
from simulator.ledger import LedgerEntry, new_id, now

router = APIRouter(tags=["native"])
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class SendBody(BaseModel):
    client_ref: str = Field(min_length=1)
    to: str = Field(min_length=1)
    sender: str = Field(alias="from", min_length=1)
    body: str = Field(min_length=1, max_length=1600)
    status_callback: str | None = None


def receipts(entry: LedgerEntry, config: SimConfig) -> list[Callback]:
    """One JSON receipt to the message's own ``status_callback``."""
    if not entry.status_callback:
        return []
    payload = {
        "id": entry.id,
        "client_ref": entry.client_ref,
        "to": entry.to,
        "status": entry.status,
        "error_code": "30003" if entry.status == "undelivered" else None,
        "at": (entry.reported_at or now()).isoformat(),
    }
    return [Callback.json(entry.status_callback, payload)]


@router.post("/v1/messages", status_code=202)
async def send(body: SendBody, request: Request, carrier: CarrierDep) -> dict[str, Any]:
    """Accept one message; receipts go to its ``status_callback``."""
    received_at = now()  # when the request arrived, before the simulated latency
    await carrier.latency()
    if not E164.match(body.to):
        # As a carrier does: a well-formed request to a number that is not one.
        raise HTTPException(400, detail={"code": "invalid_number", "message": f"{body.to!r} is not E.164"})
    if not carrier.allow("native", body.sender):
        raise HTTPException(429, detail={"code": "rate_limited", "message": "too many requests"})
    if carrier.chance(carrier.config.failure_rate):
        raise HTTPException(503, detail={"code": "unavailable", "message": "carrier busy"})
    entry = LedgerEntry(
        id=new_id(),
        client_ref=body.client_ref,
        to=body.to,
        sender=body.sender,
        body=body.body,
        segments=count_segments(body.body),
        received_at=received_at,
        signature=body.sender,
        provider_id="",
        status_callback=body.status_callback,
    )
    await carrier.commit(request, [entry], receipts)
    return {"id": entry.id, "status": "accepted", "segments": entry.segments}


@router.get("/v1/messages")
async def lookup(carrier: CarrierDep, client_ref: str = Query(min_length=1)) -> dict[str, Any]:
    """A message sent earlier, by the sender's reference."""
    entry = carrier.by_ref.get(client_ref)
    if entry is None:
        raise HTTPException(404, detail={"code": "not_found", "message": "no such message"})
    return {"id": entry.id, "status": entry.status, "segments": entry.segments}
