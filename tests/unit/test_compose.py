"""``docker-compose.yml`` as Compose reads it: ``docker-compose config`` (Debian's package, which
``.ci/run`` installs) resolves it with ``.env.example``; every service Nudge needs is there with a
healthcheck and waits for what it needs; the worker scales; every variable the file reads is
documented in ``.env.example``. Where a Docker engine runs, the stack comes up and plays a journey;
this machine has none, so that test says why it skips."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
ONE_SHOT = {"temporal-schema", "temporal-namespace", "setup"}
LONG_RUNNING = {"postgresql", "temporal", "temporal-ui", "worker", "gateway", "simulator"}


def compose(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's docker-compose)")
    return subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    done = compose("--profile", "simulator", "config")
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_compose_config_resolves_every_service_nudge_needs_with_a_healthcheck(
    resolved: dict[str, Any],
) -> None:
    services = resolved["services"]
    assert set(services) == ONE_SHOT | LONG_RUNNING
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no", name
    commands = {name: services[name].get("command") for name in ("setup", "worker", "gateway", "simulator")}
    assert commands["setup"][0] == "setup" and commands["worker"] == ["worker"]
    assert commands["gateway"][0] == "gateway" and commands["simulator"] == ["simulator"]


def test_each_service_waits_for_what_it_needs(resolved: dict[str, Any]) -> None:
    def waits(name: str) -> dict[str, str]:
        return {
            dep: spec["condition"] for dep, spec in resolved["services"][name].get("depends_on", {}).items()
        }

    assert waits("temporal-schema") == {"postgresql": "service_healthy"}
    assert waits("temporal") == {"temporal-schema": "service_completed_successfully"}
    assert waits("temporal-namespace") == {"temporal": "service_healthy"}
    assert waits("setup") == {
        "postgresql": "service_healthy",
        "temporal-namespace": "service_completed_successfully",
    }
    for name in ("worker", "gateway"):
        assert waits(name) == {"setup": "service_completed_successfully"}, name
    assert waits("simulator") == {"gateway": "service_healthy"}


def test_the_worker_scales_and_every_nudge_service_shares_one_database_and_codec(
    resolved: dict[str, Any],
) -> None:
    services = resolved["services"]
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=3 works
    envs = [services[name]["environment"] for name in ("setup", "worker", "gateway")]
    for key in (
        "NUDGE_DATABASE_URL",
        "NUDGE_CODEC_KEYS",
        "NUDGE_TEMPORAL_ADDRESS",
        "NUDGE_TEMPORAL_NAMESPACE",
    ):
        assert len({env[key] for env in envs}) == 1, key
    assert envs[0]["NUDGE_DATABASE_URL"].endswith("@postgresql:5432/nudge")
    ui = services["temporal-ui"]["environment"]
    token = envs[0]["NUDGE_CODEC_TOKEN"]
    assert ui["TEMPORAL_CODEC_ENDPOINT"] == f"{envs[0]['NUDGE_PUBLIC_URL']}/codec/t/{token}"


def test_every_variable_the_file_reads_is_documented_in_the_example() -> None:
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    documented = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.M))
    assert used, "the compose file reads no variable?"
    assert used <= documented, sorted(used - documented)


def test_a_required_secret_left_out_is_refused_with_its_name(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "\n".join(line for line in ENV_EXAMPLE.read_text().splitlines() if "CODEC_KEYS" not in line)
    )
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's docker-compose)")
    done = subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(env), "config"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "NUDGE_CODEC_KEYS" in done.stderr


def _engine_unavailable() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client"
    probe = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"no Docker engine answers `docker info` ({probe.stderr.strip().splitlines()[-1:]})"
    return None


def test_the_stack_comes_up_and_plays_one_journey() -> None:
    """The whole file for real: built, up with the simulator, healthy; an ``order_paid`` event
    through the gateway starts the payment journey, whose message reaches the simulator's ledger.
    Never run here (no engine): written against the API the other tests use."""
    if (reason := _engine_unavailable()) is not None:
        pytest.skip(f"cannot run the compose stack here: {reason}")
    project = f"nudge-test-{uuid.uuid4().hex[:6]}"
    up = compose("-p", project, "--profile", "simulator", "up", "-d", "--build", timeout=1800)
    try:
        assert up.returncode == 0, up.stderr
        key = compose(
            "-p", project, "exec", "-T", "gateway", "cat", "/var/lib/nudge/admin.key"
        ).stdout.strip()
        headers = {"Authorization": f"Bearer {key}"}
        customer = f"compose-{uuid.uuid4().hex[:6]}"
        with httpx.Client(base_url="http://127.0.0.1:8000", headers=headers, timeout=30) as http:
            body = {"id": customer, "phone": "+8613800138000", "consent": {"granted": True, "source": "test"}}
            assert http.put(f"/v1/customers/{customer}", json=body).status_code in (200, 201)
            event = {"event_id": f"{customer}-pay", "customer_id": customer, "name": "order_paid"}
            event["properties"] = {"order_id": "o1", "amount": 12.5}
            assert http.post("/v1/events", json=event).status_code == 202
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                ledger = httpx.get("http://127.0.0.1:8100/ledger", timeout=10).json()
                if any(
                    entry.get("customer_id") == customer or "+8613800138000" in str(entry) for entry in ledger
                ):
                    return
                time.sleep(1)
            raise AssertionError("no message reached the simulator's ledger")
    finally:
        compose("-p", project, "--profile", "simulator", "down", "-v", timeout=600)
