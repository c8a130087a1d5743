"""``.ci/run`` is what CI runs: a shell script that does not parse fails every run before a test."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_ci_entry_point_parses_and_ends_with_make_test() -> None:
    script = ROOT / ".ci" / "run"
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert script.read_text().rstrip().splitlines()[-1] == "make test"
