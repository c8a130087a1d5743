"""The control API for tests and the demo, under ``/_sim``, and ``/healthz``.

- ``GET /_sim/ledger?provider=&account=`` every message received, in order
- ``GET /_sim/stats`` the ledger in figures (accepted, numbers, repeats, first and last time)
- ``GET|POST /_sim/config`` read, or partially update, the ``SimConfig``
- ``POST /_sim/reset`` empties the ledger and forgets nonces and rate buckets
- ``POST /_sim/reply`` a customer replies, in the provider's callback format
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

import httpx
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from simulator import aliyun, tencent, twilio
from simulator.carrier import Carrier, CarrierDep
from simulator.config import Provider, SimConfig
from simulator.ledger import LedgerEntry

router = APIRouter(tags=["control"])

Replier = Callable[..., Awaitable[int]]
REPLY_TARGETS: dict[Provider, tuple[str, Replier]] = {
    "aliyun": ("aliyun_up_url", aliyun.post_reply),
    "twilio": ("twilio_inbound_url", twilio.post_reply),
    "tencent": ("tencent_reply_url", tencent.post_reply),
}


class Reply(BaseModel):
    """A customer's answer: from their number to our number (Twilio) or signature (Aliyun, Tencent)."""

    model_config = ConfigDict(populate_by_name=True)

    provider: Provider
    sender: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)
    text: str = Field(min_length=1)


@router.get("/_sim/ledger")
async def ledger(
    carrier: CarrierDep,
    provider: Literal["native", "aliyun", "twilio", "tencent"] | None = None,
    account: str | None = None,
    to: str | None = None,
) -> list[LedgerEntry]:
    """Every message the carrier accepted, in order; ``provider``, ``account`` and ``to`` narrow it."""
    return [
        entry
        for entry in carrier.ledger
        if (provider is None or entry.provider == provider)
        and (account is None or entry.account == account)
        and (to is None or entry.to == to)
    ]


class LedgerStats(BaseModel):
    """The ledger in figures, for benchmarks and large tests (the entries themselves are heavy)."""

    accepted: int
    """Messages accepted."""
    numbers: int
    """Distinct numbers they went to."""
    repeated: int
    """Numbers that got more than one message."""
    receipts_posted: int
    """Receipts the receiver acknowledged with a 2xx."""
    first_at: datetime | None
    last_at: datetime | None
    """When the first and the last accepted message arrived."""


@router.get("/_sim/stats")
async def stats(
    carrier: CarrierDep, provider: Literal["native", "aliyun", "twilio", "tencent"] | None = None
) -> LedgerStats:
    """How many messages the carrier accepted, to how many numbers, and when."""
    tally = carrier.tallies.of(provider)
    return LedgerStats(
        accepted=tally.accepted,
        numbers=tally.numbers,
        repeated=tally.repeated,
        receipts_posted=tally.receipts_posted,
        first_at=tally.first_at,
        last_at=tally.last_at,
    )


@router.get("/_sim/config")
async def get_config(carrier: CarrierDep) -> SimConfig:
    return carrier.config


@router.post("/_sim/config")
async def set_config(update: dict[str, Any], carrier: CarrierDep) -> SimConfig:
    carrier.config = SimConfig.model_validate({**carrier.config.model_dump(), **update})
    return carrier.config


@router.post("/_sim/reset")
async def reset(carrier: CarrierDep) -> dict[str, int]:
    return {"dropped": carrier.reset()}


async def _post_reply(carrier: Carrier, reply: Reply) -> int:
    field, post = REPLY_TARGETS[reply.provider]
    url = getattr(carrier.config, field)
    if not url:
        raise HTTPException(
            409, detail=f"{field} is not configured: nowhere to post a {reply.provider} reply"
        )
    try:
        return await post(carrier, url, sender=reply.sender, to=reply.to, text=reply.text)
    except (httpx.HTTPError, LookupError) as exc:
        raise HTTPException(502, detail=f"could not post the reply: {exc}") from exc


@router.post("/_sim/reply")
async def reply(body: Reply, carrier: CarrierDep) -> dict[str, Any]:
    """Post a customer's reply to the provider's configured reply URL."""
    return {"posted": True, "status": await _post_reply(carrier, body)}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
