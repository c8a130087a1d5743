"""The shared fixtures' rule for PostgreSQL: in CI a PostgreSQL that does not answer fails the run
with the reason; elsewhere its tests skip with the reason."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import running_in_ci

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("postgres_probe.py")


def closed_port() -> int:
    """A loopback port that nothing listens on: bound once by the kernel's choice, then freed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def down_url() -> str:
    """A PostgreSQL URL on a loopback port where nothing answers."""
    return f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test"


@pytest.fixture(scope="module")
def probe_runs(down_url: str) -> dict[str, str]:
    """The probe's PostgreSQL test run against ``down_url`` in a pytest of its own, once with
    ``CI=true`` and once without CI, side by side: for each, its exit code on the first line, then
    its output."""
    runs = {}
    for name, ci in (("ci", {"CI": "true"}), ("local", {})):
        environ = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
        runs[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-rs",
                "-p",
                "no:cacheprovider",
                "-m",
                "postgres",
                str(PROBE),
            ],
            cwd=ROOT,
            env=environ | ci | {"NUDGE_TEST_POSTGRES_URL": down_url},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    outputs = {}
    for name, process in runs.items():
        output, _ = process.communicate(timeout=120)
        outputs[name] = f"exit code {process.returncode}\n{output}"
    return outputs


def test_unreachable_postgres_fails_a_ci_run_with_the_reason(
    probe_runs: dict[str, str], down_url: str
) -> None:
    """With CI=true and nothing on the port, the run ends non-zero before any test, naming the URL
    and why."""
    output = probe_runs["ci"]
    assert output.startswith(f"exit code {pytest.ExitCode.TESTS_FAILED.value}\n"), output
    assert f"PostgreSQL not reachable at {down_url} (" in output and "Connection refused" in output, output
    assert "CI is set, so the PostgreSQL tests may not skip" in output, output
    assert "passed" not in output and "skipped" not in output, output


def test_unreachable_postgres_skips_outside_ci_with_the_reason(
    probe_runs: dict[str, str], down_url: str
) -> None:
    """Without CI, the same run passes with the PostgreSQL test skipped and the reason shown."""
    output = probe_runs["local"]
    assert output.startswith(f"exit code {pytest.ExitCode.OK.value}\n"), output
    assert "1 skipped" in output and "1 passed" not in output, output
    assert "SKIPPED [1]" in output and f": PostgreSQL not reachable at {down_url} (" in output, output


@pytest.mark.parametrize(
    ("value", "ci"),
    [
        (None, False),
        ("", False),
        ("0", False),
        ("false", False),
        ("False", False),
        ("true", True),
        ("1", True),
    ],
)
def test_running_in_ci_reads_the_ci_variable(value: str | None, ci: bool) -> None:
    """CI counts as set unless it is missing, empty, 0 or false (in any case)."""
    assert running_in_ci({} if value is None else {"CI": value}) is ci
