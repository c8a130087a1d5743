"""``nudge up`` as a process: the settings it passes on, the signals that stop it, a busy port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from starter.stack import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _env(state: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    return {
        **clean,
        "NUDGE_STATE_DIR": str(state),
        "NUDGE_GATEWAY_PORT": str(ports["gateway"]),
        "NUDGE_SIMULATOR_PORT": str(ports["simulator"]),
        "NUDGE_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
        "NUDGE_TEMPORAL_UI_PORT": str(ports["ui"]),
        **extra,
    }


def _open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def ports() -> dict[str, int]:
    return {name: free_port() for name in ("gateway", "simulator", "temporal", "ui")}


@pytest.fixture
def up(tmp_path: Path, ports: dict[str, int]) -> Iterator[subprocess.Popen[str]]:
    """``nudge up --no-demo`` with a callback token exported, as a user starts it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "starter.cli", "up", "--no-demo"],
        env=_env(tmp_path / "state", ports, NUDGE_CALLBACK_TOKEN="exported-token-42"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for child in (tmp_path / "state" / "logs").glob("*.log"):
            if "Traceback" in child.read_text(errors="replace"):
                print(child.read_text(errors="replace")[-3000:])


def _wait_serving(process: subprocess.Popen[str], timeout: float = 120) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        if "serving" in line:
            return
        assert time.monotonic() < deadline, "nudge up did not come up"
    raise AssertionError(f"nudge up exited {process.wait()} before serving")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_nudge_up_passes_settings_on_and_a_signal_stops_every_child(
    up: subprocess.Popen[str], ports: dict[str, int], signum: int
) -> None:
    """An exported NUDGE_CALLBACK_TOKEN reaches the gateway (its Aliyun receipt URL answers under
    that token and refuses the default one); SIGTERM or SIGHUP to `nudge up` then frees every port."""
    _wait_serving(up)
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    exported = httpx.post(f"{gateway}/v1/webhooks/aliyun/exported-token-42/report", json=[], timeout=10)
    default = httpx.post(f"{gateway}/v1/webhooks/aliyun/nudge-dev-callback-token/report", json=[], timeout=10)
    assert (exported.status_code, default.status_code) == (200, 403), (exported.text, default.text)

    up.send_signal(signum)
    assert up.wait(timeout=60) == 0
    still_open = {name: port for name, port in ports.items() if _open(port)}
    assert still_open == {}


def test_nudge_up_names_the_busy_port(tmp_path: Path, ports: dict[str, int]) -> None:
    """With the gateway's port taken, `nudge up` exits 1 saying which port and why, and leaves
    nothing running (Temporal's port is free again)."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["gateway"]))
        squatter.listen()
        done = subprocess.run(
            [sys.executable, "-m", "starter.cli", "up", "--no-demo"],
            env=_env(tmp_path / "state", ports),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"port {ports['gateway']} (gateway) is already in use" in done.stderr
    assert not _open(ports["temporal"])
