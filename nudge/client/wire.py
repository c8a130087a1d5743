"""What both clients share: the errors, the retry policy, the event's body and the gateway's answers."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from nudge.errors import NudgeError

RETRIED = frozenset({408, 429, 500, 502, 503, 504})
BATCH_LIMIT = 500
"""Events per ``/v1/events:batch`` request (the gateway's own limit)."""


class ClientError(NudgeError):
    """The gateway did not take a request."""


class Refused(ClientError):
    """A 4xx: the request itself is wrong (sending it again gets the same answer)."""

    def __init__(self, status: int, reason: str, body: Any = None) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.body = body


class Unavailable(ClientError):
    """The gateway could not be reached, or kept answering 5xx, through every retry."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """What the gateway did with an event."""

    event_id: str
    duplicate: bool
    """Already stored under this ``event_id`` (a retry, or the sender's own repeat): not routed again."""
    workflow_ids: list[str]
    """The journeys it started or signalled."""


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how long a request is retried."""

    attempts: int = 6
    """Tries in all (the first and five retries)."""
    first_delay: float = 0.25
    max_delay: float = 5.0

    def delays(self) -> Iterator[float]:
        """The waits between tries, with jitter (so that many senders do not retry in step)."""
        for n in range(self.attempts - 1):
            yield min(self.max_delay, self.first_delay * 2**n) * random.uniform(0.75, 1.0)


DEFAULT_RETRY = Retry()


def event_body(
    customer_id: str,
    name: str,
    properties: Mapping[str, Any] | None,
    event_id: str | None,
    occurred_at: datetime | None,
) -> dict[str, Any]:
    """The event as ``/v1/events`` takes it, with an ``event_id`` made here when none is given
    (so that every retry sends the same one)."""
    body: dict[str, Any] = {
        "event_id": event_id or uuid.uuid4().hex,
        "customer_id": customer_id,
        "name": name,
        "properties": dict(properties or {}),
    }
    if occurred_at is not None:
        if occurred_at.tzinfo is None:
            raise ValueError("occurred_at needs a timezone (the gateway refuses a naive time)")
        body["occurred_at"] = occurred_at.isoformat()
    return body


def accepted(body: Mapping[str, Any]) -> Accepted:
    return Accepted(body["event_id"], bool(body["duplicate"]), list(body["workflow_ids"]))


def read_answer(response: httpx.Response) -> Any | None:
    """The JSON of a 2xx; None for an answer worth retrying; ``Refused`` for the rest."""
    if response.is_success:
        return response.json() if response.content else {}
    if response.status_code in RETRIED:
        return None
    try:
        body = response.json()
    except ValueError:
        body = response.text
    raise Refused(response.status_code, _reason(body), body)


def _reason(body: Any) -> str:
    """The gateway's reason: its ``detail`` text, or each field error as ``where: why``."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            if isinstance(e, dict)
            else str(e)
            for e in detail
        )
    return str(detail)


def headers(api_key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def customer_path(customer: Mapping[str, Any]) -> str:
    """``PUT /v1/customers/{id}`` with the id quoted whole: an id may hold ``/``, ``?`` or ``#``."""
    return f"/v1/customers/{quote(str(customer['id']), safe='')}"
