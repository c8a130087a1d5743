"""The local carrier simulator's delivery receipts, in its own API's format.

Unsigned, so served only when a ``simulator`` route is configured (404 otherwise).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, field_validator

from nudge.models import MessageStatus
from starter.api.deps import ReceiptsDep, SettingsDep

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
SIMULATOR_STATUS = {
    "accepted": MessageStatus.SUBMITTED,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
}


class SimulatorReceipt(BaseModel):
    id: str
    client_ref: str | None = None
    status: str
    error_code: str | None = None
    at: datetime | None = None

    @field_validator("status")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in SIMULATOR_STATUS:
            raise ValueError(f"unknown status {value!r}; expected one of {sorted(SIMULATOR_STATUS)}")
        return value


@router.post("/simulator/status", include_in_schema=False)
async def simulator_status(
    receipt: SimulatorReceipt, receipts: ReceiptsDep, settings: SettingsDep
) -> dict[str, Any]:
    """Delivery receipts from the local carrier simulator's own API (unsigned: only served
    when a ``simulator`` route is configured)."""
    if not any(r.provider == "simulator" for r in settings.effective_routes):
        raise HTTPException(404, detail="no simulator route is configured")
    applied = await receipts.receive(
        provider="simulator",
        message_id=receipt.client_ref,
        provider_message_id=receipt.id,
        status=SIMULATOR_STATUS[receipt.status],
        error_code=receipt.error_code,
        at=receipt.at,
        raw=receipt.model_dump(mode="json"),
    )
    return {"ok": True, "applied": applied}
