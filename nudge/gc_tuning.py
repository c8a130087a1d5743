"""The garbage collector's settings for Nudge's long-running processes (the worker, the gateway).

CPython collects its youngest generation every 700 allocations and, now and then, walks every
object the process holds. A worker holds a few hundred thousand of them for its whole life (the
modules, the SDK, the sandbox, the ORM's mappers), and a broadcast's batch allocates a great deal:
measured on a batch of 100 recipients, the collector took 15 % of the batch's CPU. Freezing what
exists once the process has started takes those objects out of every later collection, and a
larger first threshold makes the young collections rarer. Measured side by side: the batch alone
went from 0.98 to 0.71 ms of CPU a recipient, and the worker under ``bench/broadcast.py`` (20,000
recipients) from 18.3-19.0 to 14.6-16.7 CPU-seconds, for 15 MB more RSS. (At 100,000 recipients it
seemed not to show; the benchmark's own polling of the simulator was then growing with the
broadcast's size, see the README's figures.)

Reference cycles are still collected, only less often: the young generation is collected every
``GEN0_THRESHOLD`` allocations instead of 700.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 20


def tune_gc() -> None:
    """Freeze every object alive now (call it once the process has imported and built what it
    keeps), and collect the young generation less often."""
    gc.collect()  # what is garbage already is not frozen with the rest
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
