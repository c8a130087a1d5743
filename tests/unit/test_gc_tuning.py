"""``tune_gc``: what was alive is frozen, the young generation is collected less often, and cycles
made later are still collected. It changes the collector for the whole process, so the test puts
it back as it was."""

from __future__ import annotations

import gc
import inspect
import weakref
from collections.abc import Iterator

import pytest

from nudge.gc_tuning import GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD, tune_gc


class Node:
    other: Node | None = None


@pytest.fixture
def restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored")
def test_tune_gc_freezes_what_is_alive_and_still_collects_later_cycles() -> None:
    gc.unfreeze()
    tune_gc()
    assert gc.get_freeze_count() > 1000
    assert gc.get_threshold() == (GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    assert (GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD) == (50_000, 20, 20)
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle made after the freeze
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None


def test_the_worker_and_the_gateway_tune_their_collector() -> None:
    """Both entry points call it (a refactor that drops the call loses the gain)."""
    import worker
    from starter.cli import stack

    assert "tune_gc()" in inspect.getsource(worker.main)
    assert "tune_gc()" in inspect.getsource(stack.gateway)
