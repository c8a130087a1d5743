"""``tune_gc`` in a process of its own (it changes the collector for the whole process): what was
alive is frozen, the young generation is collected less often, and cycles made later are still
collected."""

from __future__ import annotations

import json
import subprocess
import sys

from nudge.gc_tuning import GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD

PROBE = """
import gc, json, weakref
from nudge.gc_tuning import tune_gc

class Node:
    pass

before = gc.get_freeze_count()
tune_gc()
frozen = gc.get_freeze_count()
a, b = Node(), Node()
a.other, b.other = b, a          # a cycle made after the freeze
gone = weakref.ref(a)
del a, b
gc.collect()
print(json.dumps({"before": before, "frozen": frozen, "threshold": gc.get_threshold(),
                  "cycle_collected": gone() is None}))
"""


def test_tune_gc_freezes_what_is_alive_and_still_collects_later_cycles() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(out.stdout)
    assert found["before"] == 0 and found["frozen"] > 1000
    assert found["threshold"] == [GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD]
    assert GEN0_THRESHOLD > 700  # rarer than CPython's default
    assert found["cycle_collected"] is True


def test_the_worker_and_the_gateway_tune_their_collector() -> None:
    """Both entry points call it (a refactor that drops the call loses a quarter of the CPU)."""
    import inspect

    import worker
    from starter.cli import stack

    assert "tune_gc()" in inspect.getsource(worker.main)
    assert "tune_gc()" in inspect.getsource(stack.gateway)
