"""The carrier's callbacks (receipts, replies) and the arrays receipts can share.

Receipts pushed in arrays, as Aliyun's and Tencent's HTTP push sends them: the receipts bound for
one URL within a short while go out together, up to a size, in one POST.

One receipt per request is what the simulator posts by default (and what tests of redelivery and
ordering rely on); ``receipt_batch`` > 1 turns this on for the providers whose receipts are JSON
arrays (SmsReport, Tencent's status callback). Twilio's are one form post per message, always.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from simulator.ledger import LedgerEntry


@dataclass(frozen=True, slots=True)
class Callback:
    """One HTTP POST the carrier makes to the sender: a receipt or a reply."""

    url: str
    body: bytes | None
    """The form's bytes; None for JSON, serialized from ``payload`` when posted."""
    headers: dict[str, str] = field(default_factory=dict)
    payload: Any = None

    @property
    def content(self) -> bytes:
        # JSON is serialized only when posted: a receipt that joins an array never is on its own.
        if self.body is not None:
            return self.body
        return json.dumps(self.payload, ensure_ascii=False).encode()

    @property
    def items(self) -> list[Any] | None:
        """A JSON array's items (a receipt that may share its POST with others)."""
        return self.payload if isinstance(self.payload, list) else None

    @classmethod
    def json(cls, url: str, payload: Any) -> Callback:
        return cls(url, None, {"content-type": "application/json; charset=utf-8"}, payload)

    @classmethod
    def form(cls, url: str, pairs: list[tuple[str, str]], headers: dict[str, str] | None = None) -> Callback:
        return cls(
            url,
            urlencode(pairs).encode(),
            {"content-type": "application/x-www-form-urlencoded", **(headers or {})},
        )


Send = Callable[[list[LedgerEntry], str, list[Any]], Awaitable[None]]
"""Deliver one array (``entries``, ``url``, ``items``) until taken or given up."""


@dataclass(slots=True)
class _Open:
    """An array still taking items, and the future its senders wait on."""

    done: asyncio.Future[None]
    entries: list[LedgerEntry] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)


class ReceiptBatches:
    """Arrays of receipts per URL, each sent when full or when its first item has waited
    ``linger_s``."""

    def __init__(self, *, send: Send, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self._send = send
        self._spawn = spawn
        self._open: dict[str, _Open] = {}

    async def post(
        self, entry: LedgerEntry, url: str, items: list[Any], *, size: int, linger_s: float
    ) -> None:
        """Add ``entry``'s items to the URL's open array (sent at ``size`` items, or ``linger_s``
        after its first); returns once that array was delivered or given up on, so that what
        follows a receipt (a click) still comes after it."""
        batch = self._open.get(url)
        if batch is None:
            batch = self._open[url] = _Open(asyncio.get_running_loop().create_future())
            self._spawn(self._linger(url, batch, linger_s))
        batch.entries.append(entry)
        batch.items.extend(items)
        if len(batch.items) >= size:
            self._close(url, batch)
        await asyncio.shield(batch.done)

    @property
    def waiting(self) -> int:
        """Receipts in arrays not yet sent."""
        return sum(len(batch.items) for batch in self._open.values())

    def clear(self) -> None:
        """Drop the open arrays (the carrier forgot their messages); their senders stop waiting."""
        for batch in self._open.values():
            if not batch.done.done():
                batch.done.set_result(None)
        self._open.clear()

    async def _linger(self, url: str, batch: _Open, linger_s: float) -> None:
        await asyncio.sleep(linger_s)
        if self._open.get(url) is batch:
            self._close(url, batch)

    def _close(self, url: str, batch: _Open) -> None:
        del self._open[url]
        self._spawn(self._deliver(url, batch))

    async def _deliver(self, url: str, batch: _Open) -> None:
        try:
            await self._send(batch.entries, url, batch.items)
        finally:
            if not batch.done.done():
                batch.done.set_result(None)


def message_ids(entries: Sequence[LedgerEntry]) -> dict[str, Any]:
    """The messages of a callback, for its log line: ``message_id``, or an array's ``message_ids``."""
    if len(entries) == 1:
        return {"message_id": entries[0].id}
    return {"message_ids": [e.id for e in entries]}
