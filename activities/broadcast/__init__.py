"""Broadcasts (群发): the activities of the ``Broadcast`` workflow (``workflows/broadcast.py``).

- ``activities``: the four activities (pages, batches, expiry, counts), built by the worker.
- ``batch``: one batch through the gate, step by step.
- ``gate``: the gate's checks for the batch's recipients, and the caps for the batch at once.
- ``dispatch``: the batch's sends, by route, in the providers' batch calls.
- ``report``: the batch's counters, read back from its rows.
- ``rows``: the batch's message rows, read and written a batch at a time: the reads there, the
  writes before the sends in ``gate_rows``, those around them in ``call_rows``, on ``table``.
"""

from activities.broadcast.activities import BroadcastActivities

__all__ = ["BroadcastActivities"]
