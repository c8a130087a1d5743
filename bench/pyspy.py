"""py-spy on a benchmark's server process: record its stacks while the load runs, then the
functions that took the most samples, on their own and with what they call.

Samples are taken only while a thread holds the GIL (``--gil``): on one core that is the time the
process cannot serve another request. Work in C that releases it (SQLite's statements in
aiosqlite's thread, the kernel's socket calls) does not show; the process's CPU time does.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

WAITING = ("(aiosqlite/core.py:59)", "(asyncio/runners.py:118)")
"""Leaves that are waits, not work: aiosqlite's thread for its next statement, the event loop."""


class Recorder:
    """``with Recorder(pid, path):`` records ``pid`` at ``rate`` Hz until the block ends."""

    def __init__(self, pid: int, path: Path, *, rate: int = 250) -> None:
        self.path = path
        self._command = [
            str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--rate", str(rate),
            "--format", "raw", "--output", str(path), "--nonblocking", "--gil",
        ]  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Recorder:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        self._process.wait(timeout=60)


def top_costs(path: Path, top: int) -> dict[str, list[tuple[str, float]]]:
    """The functions taking the most samples, in percent of all the samples kept: ``self`` (the
    sample's innermost frame) and ``total`` (anywhere on its stack)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, weight = line.rpartition(" ")
        if stack.endswith(WAITING):
            continue
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        frames = [re.sub(r"\(/[^(]*/(site-packages|main|nudge-base)/", "(", frame) for frame in frames]
        samples += int(weight)
        own[frames[-1]] += int(weight)
        for frame in set(frames):
            total[frame] += int(weight)
    share = 100.0 / max(samples, 1)
    # The frames under every request (the process's entry point, the event loop) say nothing.
    under_all = max(total.values(), default=0)
    return {
        "self": [(frame, n * share) for frame, n in own.most_common(top)],
        "total": [(frame, n * share) for frame, n in total.most_common() if n < under_all][:top],
    }


def print_costs(costs: dict[str, list[tuple[str, float]]], *, title: str, console: Console) -> None:
    for kind in ("self", "total"):
        table = Table("function", "% of samples", title=f"{title}: py-spy, {kind} time")
        for frame, share in costs[kind]:
            table.add_row(frame, f"{share:.1f}")
        console.print(table)
