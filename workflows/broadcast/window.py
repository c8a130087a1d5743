"""How fast a broadcast sends: the window of batches in flight, and the pace of ``--rate``.

The window behaves like TCP's congestion window: a batch that spent time on a provider's
throttling halves it, and every full window of clean batches grows it by one, never above the
broadcast's own ``window``. Only a batch started after the last cut can cut again: the batches
already in flight met the same throttling, and halving once per one of them would collapse the
window to one for a single episode. Pure and deterministic (the workflow passes the time in).
"""

from __future__ import annotations

from datetime import datetime, timedelta


class Window:
    """The batches a broadcast may have in flight now."""

    def __init__(self, *, limit: int, size: int | None = None, clean: int = 0) -> None:
        self.limit = limit
        self.size = max(1, min(limit, size or limit))
        self.clean = clean
        """Clean reports since the window last changed."""
        self.generation = 0
        """How many cuts so far; a batch remembers the generation it started in."""

    def report(self, *, throttled: bool, started_in: int) -> None:
        """One batch finished (``started_in``: the generation when it started)."""
        if throttled:
            self.clean = 0
            if started_in == self.generation:
                self.size = max(1, self.size // 2)
                self.generation += 1
            return
        self.clean += 1
        if self.clean >= self.size and self.size < self.limit:
            self.size += 1
            self.clean = 0


class Pacer:
    """``--rate``: batches start no faster than ``rate`` recipients per second, on average since
    the pace began (a pause, a resume or a new run begins it again, so that no burst follows)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._since: datetime | None = None
        self._taken = 0

    def wait(self, now: datetime) -> timedelta:
        """How long to wait before the next batch may start (zero: now)."""
        if self.rate is None:
            return timedelta(0)
        if self._since is None:
            self._since = now
        due = self._since + timedelta(seconds=self._taken / self.rate)
        return max(due - now, timedelta(0))

    def take(self, recipients: int) -> None:
        """A batch of up to ``recipients`` started."""
        self._taken += recipients

    def restart(self) -> None:
        self._since = None
        self._taken = 0
