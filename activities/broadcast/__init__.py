"""Broadcasts (群发): the activities of the ``Broadcast`` workflow (``workflows/broadcast.py``).

- ``activities``: the four activities (pages, batches, expiry, counts), built by the worker.
- ``batch``: one batch through the gate, step by step.
- ``dispatch``: the batch's sends, by route, in the providers' batch calls.
- ``rows``: the batch's message rows, read and written a batch at a time.
"""

from activities.broadcast.activities import BroadcastActivities

__all__ = ["BroadcastActivities"]
