"""How a ``nudge`` command that talked to Temporal ends: at once, its output whole, its exit code
kept, without the interpreter's teardown, which the SDK's core threads can abort
(temporalio/sdk-python#300; once in about 150 ``nudge journeys`` on a loaded machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from starter.stack import Ports, Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

# ``nudge ARGS`` with an exit handler that reports the interpreter's teardown when it runs, and a
# line left in stdout's buffer (a pipe's is written only when full or flushed).
PROBE = """\
import atexit, sys
atexit.register(lambda: sys.stderr.write("interpreter teardown\\n"))
print("buffered line")
"""
# A log record held by a handler that writes it only when flushed, as logging's shutdown does.
HOLD_LOG = """\
import logging, logging.handlers
held = logging.getLogger("probe")
held.addHandler(logging.handlers.MemoryHandler(100, target=logging.StreamHandler(sys.stdout)))
held.warning("held log record")
"""
# ``nudge journeys`` failing with an error no command expects, once connected.
PLANT_FAILURE = """\
import importlib
async def planted(*args, **kwargs):
    raise ValueError("planted failure")
importlib.import_module("starter.cli.journeys").fetch = planted
"""
RUN = "from starter.cli import main\nmain()\n"
TEARDOWN = "interpreter teardown"
BUFFERED = "buffered line"
HELD = "held log record"


def nudge(
    stack: Stack, *args: str, hold_log: bool = False, plant: str = ""
) -> subprocess.CompletedProcess[str]:
    # Without PYTHONUNBUFFERED (set on some machines), stdout to a pipe is block-buffered.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_") and k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", PROBE + (HOLD_LOG if hold_log else "") + plant + RUN, *args],
        env={
            **clean,
            "NUDGE_STATE_DIR": str(stack.state_dir),  # its codec key
            "NUDGE_TEMPORAL_ADDRESS": stack.temporal_address,
            "COLUMNS": "200",
        },
        cwd=ROOT,
        capture_output=True,  # pipes: block-buffered, so output not flushed before the end is lost
        text=True,
        timeout=60,
    )


def test_a_command_that_talked_to_temporal_ends_without_teardown_and_keeps_its_output(
    temporal: Stack,
) -> None:
    done = nudge(temporal, "journeys", "nobody", hold_log=True)
    assert done.returncode == 0, done.stderr
    assert "no journeys for customer 'nobody'" in done.stdout
    assert done.stdout.startswith(BUFFERED), "what was written before the end is kept"
    assert done.stdout.rstrip().endswith(HELD), "log handlers are flushed at the end"
    assert TEARDOWN not in done.stderr


def test_its_failure_keeps_its_exit_code_and_message(temporal: Stack) -> None:
    """``broadcast status`` of an unknown id is refused after it connected: exit 2 with the reason."""
    done = nudge(temporal, "broadcast", "status", "no-such-broadcast")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "no broadcast 'no-such-broadcast'" in done.stderr
    assert done.stdout == f"{BUFFERED}\n", "stdout, written to by nothing else, is flushed"
    assert TEARDOWN not in done.stderr


def test_a_command_that_never_connected_ends_as_usual(temporal: Stack) -> None:
    """Teardown is skipped only where it can race the SDK: ``nudge --version`` tears down."""
    from importlib.metadata import version

    done = nudge(temporal, "--version")
    assert done.returncode == 0
    assert done.stdout.split("\n")[:2] == [BUFFERED, f"nudge {version('nudge')}"]
    assert TEARDOWN in done.stderr


def test_an_unexpected_error_after_connecting_is_reported_and_exits_1(temporal: Stack) -> None:
    """An error no command handles still ends without teardown: its traceback, then exit 1."""
    done = nudge(temporal, "journeys", "nobody", plant=PLANT_FAILURE)
    assert done.returncode == 1, done.stderr
    assert "Traceback" in done.stderr and "ValueError: planted failure" in done.stderr
    assert TEARDOWN not in done.stderr


def test_a_command_that_could_not_connect_ends_without_teardown_too(temporal: Stack) -> None:
    """A Temporal that does not answer: the reason and exit 1. The attempt started the SDK's
    threads, so the teardown is skipped here as well."""
    stack = Stack(state_dir=temporal.state_dir, ports=Ports.free(), ui=False)  # nothing listens there
    done = nudge(stack, "journeys", "nobody")
    assert done.returncode == 1
    assert "cannot reach Temporal" in done.stderr
    assert TEARDOWN not in done.stderr
