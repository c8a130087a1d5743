"""The ``nudge`` entry point as a user runs it (its own process): version, and bad settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def nudge(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", *args],
        env={**clean, **env, "COLUMNS": "200"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version_prints_the_installed_version() -> None:
    """``nudge --version`` prints the package's version and exits 0."""
    from importlib.metadata import version

    done = nudge("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"nudge {version('nudge')}")


@pytest.mark.parametrize("command", [["pauses"], ["journeys", "c1"], ["routes"], ["keys", "list"]])
def test_a_malformed_setting_is_one_clean_line_in_every_command(command: list[str]) -> None:
    """A malformed NUDGE_ROUTES gives every command the same one-line reason and exit 2, never a
    traceback."""
    done = nudge(*command, NUDGE_ROUTES='[{"name": "x", "provider": "tencent"')
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "invalid settings: NUDGE_ROUTES" in done.stderr
