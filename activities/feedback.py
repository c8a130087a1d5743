"""What receipts, replies and clicks share: the signal to the journey that waits for a message,
complaint counting that never fails the feedback it comes with, and ``GroupCommit``, which stores
the feedback of requests that arrive together in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from nudge.contracts import MESSAGE
from nudge.logging import get_logger
from nudge.models import MessageUpdate

log = get_logger(__name__)
Item = TypeVar("Item")
Outcome = TypeVar("Outcome")
Result = TypeVar("Result")


def signalled(workflow_id: str | None, broadcast_id: str | None) -> bool:
    """Whether a message's feedback goes to a workflow: a journey's does, a broadcast's never (a
    million receipts would flood its one workflow; it reads its delivered counts from the store)."""
    return bool(workflow_id) and broadcast_id is None


async def signal_journey(client: Client, workflow_id: str, update: MessageUpdate) -> None:
    """Tell the journey that sent the message what became of it; a journey that has ended
    meanwhile has nothing left to wait for."""
    try:
        await MESSAGE.send(client.get_workflow_handle(workflow_id), update)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        log.info("signal_skipped_journey_closed", workflow_id=workflow_id)


async def count_complaint(counting: Awaitable[object]) -> None:
    """Counting a complaint never fails the receipt or the reply: the provider would only
    deliver it again."""
    try:
        await counting
    except Exception:  # noqa: BLE001 - logged; the receipt or reply is stored either way
        log.exception("complaint_not_recorded")


_FINISHING: set[asyncio.Future[Any]] = set()


async def finish_anyway(work: Awaitable[Result]) -> Result:
    """``work``'s result, and ``work`` run to its end even when the caller is cancelled (a client
    that hung up): what a request stores is stored either way (``GroupCommit``), and so must be
    what follows from it, the journey's signal and the complaint count."""
    task = asyncio.ensure_future(work)
    _FINISHING.add(task)
    task.add_done_callback(_FINISHING.discard)
    return await asyncio.shield(task)


class GroupCommit(Generic[Item, Outcome]):
    """Stores the items of concurrent requests together: what arrives while one transaction runs
    goes into the next, so under load one transaction serves many requests (its statements
    set-based over all their items) instead of one each, and alone a request's items go at once.

    A request is answered only once its own items are committed. When a combined transaction
    fails, each request's items are tried again on their own, so one bad request fails only
    itself. Items are stored in the order they were submitted, one transaction at a time.
    """

    def __init__(self, store: Callable[[list[Item]], Awaitable[list[Outcome]]], *, limit: int = 1000) -> None:
        """
        Args:
            store: Stores the items in one transaction and returns one outcome per item, in order.
            limit: At most this many items in one transaction (a request's are never split).
        """
        self._store = store
        self._limit = limit
        self._waiting: list[tuple[Sequence[Item], asyncio.Future[list[Outcome]]]] = []
        self._drain: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[Item]) -> list[Outcome]:
        """Store ``items`` (with whatever else is waiting) and return their outcomes, in order."""
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, future))
        if self._drain is None or self._drain.done():
            # The task, not the request, runs the transaction: a request cancelled meanwhile (its
            # client went away) leaves the others' items to be stored all the same.
            self._drain = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._waiting:
            size = 0
            batch: list[tuple[Sequence[Item], asyncio.Future[list[Outcome]]]] = []
            while self._waiting and (not batch or size + len(self._waiting[0][0]) <= self._limit):
                batch.append(self._waiting.pop(0))
                size += len(batch[-1][0])
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Sequence[Item], asyncio.Future[list[Outcome]]]]) -> None:
        try:
            outcomes = await self._store([item for items, _ in batch for item in items])
        except Exception as exc:
            if len(batch) > 1:
                for request in batch:
                    await self._commit([request])
                return
            _settle(batch[0][1], error=exc)
            return
        except BaseException as exc:  # cancelled (the loop shuts down): nobody waits for nothing
            for _, future in batch + self._waiting:
                _settle(future, error=exc)
            self._waiting.clear()
            raise
        start = 0
        for items, future in batch:
            _settle(future, result=outcomes[start : start + len(items)])
            start += len(items)


def _settle(
    future: asyncio.Future[list[Outcome]],
    *,
    result: list[Outcome] | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():  # its request was cancelled
        return
    if isinstance(error, asyncio.CancelledError):
        future.cancel()
    elif error is not None:
        future.set_exception(error)
    else:
        future.set_result(result or [])
