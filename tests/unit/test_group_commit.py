"""``GroupCommit``: the items of requests that arrive together go into one store call, in the
order they came, each request gets its own outcomes back, and one failing request fails only
itself. The store here is a function that records its calls (no database)."""

from __future__ import annotations

import asyncio

import pytest

from activities.feedback import GroupCommit


class Store:
    """Records each batch it is given; fails any batch holding a ``bad`` item."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def __call__(self, items: list[str]) -> list[str]:
        await asyncio.sleep(0)  # a transaction takes a while: requests arrive meanwhile
        if "bad" in items:
            raise ValueError("a bad item")
        self.batches.append(list(items))
        return [item.upper() for item in items]


async def test_concurrent_requests_share_one_store_call_in_their_order() -> None:
    """Five requests submitted together: one call stores all their items in submission order, and
    each request gets back the outcomes of its own items."""
    store = Store()
    group = GroupCommit(store)
    requests = [["a1", "a2"], ["b1"], ["c1", "c2", "c3"], ["d1"], ["e1"]]
    answers = await asyncio.gather(*(group.submit(items) for items in requests))
    assert answers == [["A1", "A2"], ["B1"], ["C1", "C2", "C3"], ["D1"], ["E1"]]
    assert store.batches == [["a1", "a2", "b1", "c1", "c2", "c3", "d1", "e1"]]


async def test_requests_arriving_during_a_store_call_go_into_the_next() -> None:
    """A lone request is stored at once; the ones that come while its call runs are stored
    together in the next call, not one call each."""
    store = Store()
    group = GroupCommit(store)
    first = asyncio.create_task(group.submit(["first"]))
    await asyncio.sleep(0)  # its call has started
    later = [asyncio.create_task(group.submit([f"later{i}"])) for i in range(4)]
    await asyncio.gather(first, *later)
    assert store.batches == [["first"], ["later0", "later1", "later2", "later3"]]


async def test_a_store_call_takes_at_most_the_limit_and_never_splits_a_request() -> None:
    """With a limit of 3 items, requests of 2, 2, 1 and 3 items go as [2], [2, 1], [3]; a request
    larger than the limit still goes whole."""
    store = Store()
    group = GroupCommit(store, limit=3)
    requests = [["a", "a"], ["b", "b"], ["c"], ["d", "d", "d"], ["e", "e", "e", "e"]]
    await asyncio.gather(*(group.submit(items) for items in requests))
    assert store.batches == [["a", "a"], ["b", "b", "c"], ["d", "d", "d"], ["e", "e", "e", "e"]]


async def test_a_failing_request_fails_alone_and_the_others_are_stored() -> None:
    """When the combined call fails, each request is tried on its own: the one with the bad item
    gets the error, the others their outcomes."""
    store = Store()
    group = GroupCommit(store)
    answers = asyncio.gather(
        group.submit(["g1"]), group.submit(["bad"]), group.submit(["o1"]), return_exceptions=True
    )
    good, bad, other = await asyncio.wait_for(answers, timeout=10)  # nobody is left waiting
    assert (good, other) == (["G1"], ["O1"])
    assert isinstance(bad, ValueError)
    assert store.batches == [["g1"], ["o1"]]


async def test_a_cancelled_request_leaves_the_others_to_be_stored() -> None:
    """A request whose client went away is cancelled; the batch it was in is stored all the same
    and the other requests get their outcomes."""
    store = Store()
    group = GroupCommit(store)
    gone = asyncio.create_task(group.submit(["gone"]))
    kept = asyncio.create_task(group.submit(["kept"]))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept == ["KEPT"]
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert store.batches == [["gone", "kept"]]
