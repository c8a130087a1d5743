"""Helpers for the send gate's tests: a request, one activity attempt, the one message row."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.testing import ActivityEnvironment

from activities.send import SendActivities
from nudge.models import Category, SendRequest, SendResult
from nudge.routes import DEV_ALIYUN_KEYS
from nudge.store import Message

CN = "+8613800138000"
US = "+14155550100"
PRIMARY = next(iter(DEV_ALIYUN_KEYS))
"""The primary Aliyun account's key id (its route is aliyun-cn)."""


def request(customer: str = "cn", **overrides: Any) -> SendRequest:
    """A payment confirmation for ``customer``, as PaymentSuccess would ask for it."""
    fields: dict[str, Any] = {
        "idempotency_key": f"wf-{customer}/run/1",
        "workflow_id": f"wf-{customer}",
        "journey": "payment_success",
        "step": "send:payment_success",
        "customer_id": customer,
        "template": "payment_success",
        "params": {"order_id": "o-1", "amount": "9.90"},
        "category": Category.TRANSACTIONAL,
    }
    return SendRequest(**(fields | overrides))


async def run(sends: SendActivities, req: SendRequest, *, attempt: int = 1) -> SendResult:
    """One attempt of ``send_message``, as the worker would run it (``attempt`` counts from 1)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt, activity_type="send_message")
    result: SendResult = await env.run(sends.send_message, req)
    return result


async def message(sessions: async_sessionmaker[AsyncSession]) -> Message:
    """The one message row in the store."""
    async with sessions() as session:
        return (await session.exec(select(Message))).one()
