"""The carrier's state and behaviour shared by every API: ledger, limits, faults, receipts, clicks."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from httpx_aiohttp import AiohttpTransport

from nudge.logging import get_logger
from simulator.callbacks import Callback, ReceiptBatches, message_ids
from simulator.config import Fault, SimConfig
from simulator.customer import click_rate, follow_links
from simulator.ledger import LedgerEntry, LedgerTallies, now
from simulator.limits import TokenBucket
from simulator.numbers import e164, same_number

log = get_logger("simulator")
RETRY_BASE_S = 0.2
RETRY_MAX_S = 5.0
"""Redelivery backs off from 0.2 s, doubling, to every 5 s, for ``receipt_retry_s`` in all."""
CALLBACK_CONCURRENCY = 32
"""Callbacks (receipts, replies) posted at once, at most; the rest wait their turn."""


ReceiptBuilder = Callable[[LedgerEntry, SimConfig], list[Callback]]
"""The receipts for a settled entry, in the order the provider posts them; [] when none is wanted."""


class Carrier:
    """State of the simulated carrier."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.ledger: list[LedgerEntry] = []
        self.tallies = LedgerTallies()
        self._receipted: dict[str, asyncio.Event] = {}
        """Set once a clicking customer's message has its receipts posted (the click waits for it)."""
        self.by_ref: dict[str, LedgerEntry] = {}
        self._by_number: dict[str, list[LedgerEntry]] = {}
        """The ledger by recipient (E.164), for the lookups by number: a broadcast's reconciliation
        asks for hundreds of numbers at once, and a scan of the whole ledger each stalls the carrier."""
        self._nonces: set[tuple[str, str]] = set()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # aiohttp under httpx's API: httpcore's pool spends most of the carrier's CPU once a
        # broadcast's receipts are in flight, and the posts at once are bounded for the same reason.
        self._client = httpx.AsyncClient(transport=AiohttpTransport(), timeout=10, trust_env=False)
        self._posting = asyncio.Semaphore(CALLBACK_CONCURRENCY)
        self._arrays = ReceiptBatches(
            send=lambda entries, url, items: self._deliver(entries, Callback.json(url, items)),
            spawn=self.spawn,
        )

    # ----- lifecycle ----------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._arrays.clear()
        await self._client.aclose()

    def reset(self) -> int:
        """Forget every message, nonce and rate bucket; returns how many messages were dropped.

        Receipts and clicks still pending for the forgotten messages are cancelled.
        """
        for task in list(self._tasks):
            task.cancel()
        self._arrays.clear()
        dropped = len(self.ledger)
        self.ledger.clear()
        self.tallies = LedgerTallies()
        self._receipted.clear()
        self.by_ref.clear()
        self._by_number.clear()
        self._nonces.clear()
        self._buckets.clear()
        return dropped

    def holds(self, entry: LedgerEntry) -> bool:
        """Whether ``entry`` is in the ledger still (not forgotten by a reset)."""
        return any(held is entry for held in self._by_number.get(entry.to, ()))

    @property
    def receipts_waiting(self) -> int:
        """Receipts held in an open array (``receipt_batch``), not yet posted."""
        return self._arrays.waiting

    def sent_to(self, number: str) -> list[LedgerEntry]:
        """The messages to ``number`` (any form ``e164`` reads), in the order they were accepted."""
        return self._by_number.get(e164(number), [])

    # ----- request handling ---------------------------------------------------------------------

    @staticmethod
    def chance(rate: float) -> bool:
        return rate >= 1 or (rate > 0 and random.random() < rate)

    async def latency(self) -> None:
        mean = self.config.latency_ms
        if mean <= 0:
            return
        delay = {
            "exponential": lambda: random.expovariate(1 / mean),
            "fixed": lambda: mean,
            "uniform": lambda: random.uniform(0, 2 * mean),
        }[self.config.latency_distribution]()
        await asyncio.sleep(delay / 1000)

    def allow(self, provider: str, account: str) -> bool:
        """Take a token from the account's bucket; False means the provider throttles this send."""
        tps = self.config.rate_limit_tps
        if tps is None:
            return True
        bucket = self._buckets.setdefault((provider, account), TokenBucket(tokens=max(1.0, tps)))
        return bucket.take(tps)

    def use_nonce(self, account: str, nonce: str) -> bool:
        """Record a signature nonce; False if the account used it before."""
        if (account, nonce) in self._nonces:
            return False
        self._nonces.add((account, nonce))
        return True

    def pick_fault(self, provider: str, account: str, numbers: list[str]) -> Fault | None:
        """The first configured fault that matches this send and fires."""
        for fault in self.config.faults:
            if fault.provider not in (provider, "*"):
                continue
            if fault.account is not None and fault.account != account:
                continue
            if fault.numbers and not any(same_number(n, f) for n in numbers for f in fault.numbers):
                continue
            if self.chance(fault.rate):
                return fault
        return None

    async def hold(self, request: Request) -> None:
        """Keep the answer back for ``timeout_s``, or until the client has given up and gone."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_s
        while (remaining := deadline - loop.time()) > 0:
            if await request.is_disconnected():
                return
            await asyncio.sleep(min(0.05, remaining))

    async def commit(
        self,
        request: Request,
        entries: list[LedgerEntry],
        receipts: ReceiptBuilder,
        *,
        early: bool = False,
        reverse: bool = False,
    ) -> None:
        """Record accepted messages, start their receipts and clicks, maybe hold the answer back.

        ``early`` posts the receipts now, before the send is answered; ``reverse`` posts a
        message's receipts in the opposite order.
        """
        for entry in entries:
            self.ledger.append(entry)
            self.tallies.add(entry)
            self._by_number.setdefault(entry.to, []).append(entry)
            if entry.provider == "native":
                self.by_ref.setdefault(entry.client_ref, entry)
            if any(same_number(entry.to, n) for n in self.config.click_numbers) or self.chance(
                self.click_rate(entry)
            ):
                self._receipted[entry.id] = asyncio.Event()
                self.spawn(self.click(entry))
        for entry in entries:
            if early:
                await self._receipts(entry, receipts, delay=False, reverse=reverse)
            else:
                self.spawn(self._receipts(entry, receipts, delay=True, reverse=reverse))
        if self.chance(self.config.timeout_rate):
            await self.hold(request)

    def click_rate(self, entry: LedgerEntry) -> float:
        """How likely the simulated customer is to click this message's links."""
        return click_rate(self.config, entry.body)

    # ----- receipts and replies -----------------------------------------------------------------

    def settle(self, entry: LedgerEntry) -> None:
        """Decide the message's fate: undelivered for ``fail_numbers``, else delivered."""
        failed = any(same_number(entry.to, n) for n in self.config.fail_numbers)
        entry.status = "undelivered" if failed else "delivered"
        entry.reported_at = now()

    async def _receipts(
        self, entry: LedgerEntry, build: ReceiptBuilder, *, delay: bool, reverse: bool
    ) -> None:
        try:
            await self._post_receipts(entry, build, delay=delay, reverse=reverse)
        finally:
            if (receipted := self._receipted.get(entry.id)) is not None:
                receipted.set()

    async def _post_receipts(
        self, entry: LedgerEntry, build: ReceiptBuilder, *, delay: bool, reverse: bool
    ) -> None:
        if delay:
            await asyncio.sleep(self.config.receipt_delay_ms / 1000)
        self.settle(entry)
        if self.chance(self.config.receipt_drop_rate):
            log.info("receipt_dropped", message_id=entry.id)
            return
        callbacks = build(entry, self.config)
        if callbacks and self.chance(self.config.receipt_duplicate_rate):
            callbacks.append(callbacks[-1])
        if reverse:
            callbacks.reverse()
        batch = self.config.receipt_batch
        for callback in callbacks:
            if delay and batch > 1 and callback.items is not None:
                linger_s = self.config.receipt_batch_linger_ms / 1000
                await self._arrays.post(entry, callback.url, callback.items, size=batch, linger_s=linger_s)
            elif delay:
                await self._deliver([entry], callback)
            elif not await self._attempt([entry], callback):
                # Answering the send must not wait for the receiver's retries.
                self.spawn(self._deliver([entry], callback, attempt=1))

    async def _attempt(self, entries: Sequence[LedgerEntry], callback: Callback) -> bool:
        try:
            async with self._posting:
                response = await self._client.post(
                    callback.url, content=callback.content, headers=callback.headers
                )
        except httpx.HTTPError as exc:
            log.warning("callback_failed", url=callback.url, error=str(exc))
            return False
        if response.is_success:
            for entry in entries:
                entry.receipts_posted += 1
                if self.holds(entry):  # a reset since may have forgotten it
                    self.tallies.receipt_posted(entry)
            return True
        log.warning("callback_refused", url=callback.url, status=response.status_code)
        return False

    async def _deliver(self, entries: Sequence[LedgerEntry], callback: Callback, *, attempt: int = 0) -> None:
        """Post until the receiver takes it, backing off, for ``receipt_retry_s`` (providers redeliver
        a receipt the customer's server did not take)."""
        deadline = asyncio.get_running_loop().time() + self.config.receipt_retry_s
        while True:
            if attempt:
                wait = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (attempt - 1))
                if asyncio.get_running_loop().time() + wait > deadline:
                    break
                await asyncio.sleep(wait)
            if await self._attempt(entries, callback):
                if attempt:
                    log.info("receipt_redelivered", **message_ids(entries), attempts=attempt + 1)
                return
            attempt += 1
        log.warning("receipt_undeliverable", **message_ids(entries), attempts=attempt)

    async def post_once(self, callback: Callback) -> int:
        """POST a reply once; the receiver's HTTP status (httpx errors propagate)."""
        response = await self._client.post(callback.url, content=callback.content, headers=callback.headers)
        return response.status_code

    # ----- the simulated customer ---------------------------------------------------------------

    async def click(self, entry: LedgerEntry) -> None:
        """Follow the message's links as a person does: a while after reading it, which is after
        its delivery receipt reached the sender."""
        receipted = self._receipted.get(entry.id) or asyncio.Event()
        bound = (self.config.receipt_delay_ms / 1000) + self.config.receipt_retry_s + 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receipted.wait(), timeout=bound)
        self._receipted.pop(entry.id, None)
        await asyncio.sleep(self.config.click_delay_ms / 1000)
        await follow_links(self._client, entry)


def get_carrier(request: Request) -> Carrier:
    carrier: Carrier = request.app.state.carrier
    return carrier


CarrierDep = Annotated[Carrier, Depends(get_carrier)]
