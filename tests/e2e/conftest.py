from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from starter.demo import DEMO_OVERRIDES, PLAYGROUND_ENV
from starter.stack import Ports, Stack, StackError


@contextlib.contextmanager
def running_stack(state_dir: Path, **env: str) -> Iterator[Stack]:
    """The real local stack (dev server, worker, gateway, simulator) on free loopback ports, with
    ``env`` on top of the e2e settings; stopped however the body exits."""
    overrides = {
        **DEMO_OVERRIDES,
        "cart_abandonment": {**DEMO_OVERRIDES["cart_abandonment"], "conversion_window": "PT2S"},
    }

    def stack() -> Stack:
        return Stack(
            state_dir=state_dir,
            ports=Ports.free(),
            env_overrides={
                "NUDGE_JOURNEY_OVERRIDES": json.dumps(overrides),
                # The stack runs on the real clock, at any hour; quiet hours have tests of their own.
                "NUDGE_QUIET_HOURS": PLAYGROUND_ENV["NUDGE_QUIET_HOURS"],
                "NUDGE_SIMULATOR_RECEIPT_DELAY_MS": "100",
                # A route paused by an account-level error probes again after 2 s, not 5 min.
                "NUDGE_ACCOUNT_PAUSE": "PT2S",
                **env,
            },
            ui=False,
        )

    running = stack()
    for attempt in range(3):
        try:
            running.start()
            break
        except StackError:
            running.stop()
            # Free ports are picked, then released for the children to bind: another process can
            # take one in between. Only that is worth another set of ports.
            logs = " ".join(path.read_text(errors="replace") for path in (state_dir / "logs").glob("*.log"))
            if "address already in use" not in logs or attempt == 2:
                raise
            running = stack()
    try:
        yield running
    finally:
        running.stop()
        for log in sorted((state_dir / "logs").glob("*.log")):
            text = log.read_text(errors="replace")
            if "Traceback" in text:
                print(f"---- {log.name} (has a traceback) ----\n{text[-4000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The real local stack, one per test module."""
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Only the stack's Temporal dev server, for tests that need nothing else."""
    stack = Stack(state_dir=tmp_path_factory.mktemp("stack"), ports=Ports.free(), ui=False)
    stack.start_parts("temporal")
    try:
        yield stack
    finally:
        stack.stop()
