"""The local stack: Temporal dev server, worker, gateway and carrier simulator as child processes.

``nudge up``, ``nudge demo`` and the e2e tests all start it the same way. Each child logs to
``<state_dir>/logs/<name>.log``; stopping the stack terminates every child, then kills stragglers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from nudge.binaries import find_binary
from nudge.broadcasts import BroadcastSpec
from nudge.codec import new_key
from nudge.contracts import SEARCH_ATTRIBUTES
from nudge.errors import NudgeError
from nudge.settings import Settings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StackError(NudgeError):
    """A child process failed to start; the message names it and points at its log."""


@dataclass
class Ports:
    temporal: int = 7233
    ui: int = 8233
    gateway: int = 8000
    simulator: int = 8100
    metrics: int = 9464
    """The worker's /metrics."""

    @classmethod
    def free(cls) -> Ports:
        return cls(
            temporal=free_port(),
            ui=free_port(),
            gateway=free_port(),
            simulator=free_port(),
            metrics=free_port(),
        )


@dataclass
class Stack:
    state_dir: Path
    ports: Ports = field(default_factory=Ports)
    env_overrides: dict[str, str] = field(default_factory=dict)
    ui: bool = True
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    @property
    def api_key(self) -> str:
        """The local admin key the gateway wrote on start (``NUDGE_LOCAL_ADMIN_KEY``)."""
        return (self.state_dir / "admin.key").read_text().strip()

    @property
    def codec_token(self) -> str:
        """The codec server's token in the URL the stack's Temporal UI decodes payloads through."""
        return (self.state_dir / "codec.token").read_text().strip()

    @property
    def client_settings(self) -> Settings:
        """Settings for a client of this stack: its Temporal, its gateway, its state dir (codec keys)."""
        return Settings(
            state_dir=self.state_dir, temporal_address=self.temporal_address, public_url=self.gateway_url
        )

    def ensure_secrets(self) -> None:
        """The local codec key and the codec server's token, made on the first start and kept (a
        history sealed with a key is unreadable without it), readable by their owner only."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name, make in (
            ("codec.keys", lambda: new_key("local-1")),
            ("codec.token", lambda: secrets.token_urlsafe(24)),
        ):
            path = self.state_dir / name
            if not path.exists():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(make() + "\n")
            elif path.stat().st_mode & 0o077:
                path.chmod(0o600)  # a copy or an old checkout left it readable by others

    @property
    def gateway_headers(self) -> dict[str, str]:
        """What a client of this stack's gateway sends: the local admin key."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.simulator}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.ports.temporal}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.ui}"

    def child_env(self) -> dict[str, str]:
        # PYTHONDONTWRITEBYTECODE (set on some CI machines) would make the worker compile the
        # journeys' source again for every workflow run, because the sandbox re-imports them.
        # Every NUDGE_* setting exported in the shell goes to the children (routes, tokens, caps:
        # what `nudge routes` shows is what runs); the stack's own addresses and state dir win.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(
            NUDGE_STATE_DIR=str(self.state_dir),
            NUDGE_TEMPORAL_ADDRESS=self.temporal_address,
            NUDGE_GATEWAY_PORT=str(self.ports.gateway),
            # The port the UI really has, so that codec CORS and the dashboard's links find it.
            NUDGE_TEMPORAL_UI_PORT=str(self.ports.ui),
            NUDGE_SIMULATOR_PORT=str(self.ports.simulator),
            NUDGE_WORKER_METRICS_PORT=str(self.ports.metrics),
            NUDGE_LOG_JSON="true",
            # The gateway makes the local admin key (<state_dir>/admin.key) the CLI and demo use.
            NUDGE_LOCAL_ADMIN_KEY="true",
            NUDGE_CODEC_TOKEN=self.codec_token,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env_overrides)
        return env

    def start(self) -> None:
        """Start every child and wait until each answers; on any failure stop them all."""
        self.start_parts("temporal", "simulator", "gateway", "worker")

    def start_parts(self, *parts: str) -> None:
        """Start some of the children (in the stack's order), e.g. a benchmark's baseline."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(exist_ok=True)
        self.ensure_secrets()
        self.check_ports_free(*parts)
        try:
            if "temporal" in parts:
                self._spawn("temporal", self._temporal_command())
                self._wait_port("temporal", self.ports.temporal, timeout=60)
            if "gateway" in parts or "worker" in parts:
                self.upgrade_database()
            for name in ("simulator", "gateway", "worker"):
                if name in parts:
                    self._spawn(name, self._nudge_command(name))
            if "simulator" in parts:
                self._wait_http("simulator", f"{self.simulator_url}/healthz", timeout=30)
            if "gateway" in parts:
                self._wait_http("gateway", f"{self.gateway_url}/healthz", timeout=60)
        except BaseException:
            self.stop()
            raise

    async def start_broadcast(self, spec: BroadcastSpec) -> str:
        """Start ``spec`` through the gateway's ``POST /v1/broadcasts``, as ``nudge broadcast
        start`` does (the gate's checks of audience, template and route included); its workflow id."""
        async with httpx.AsyncClient(
            base_url=self.gateway_url, headers=self.gateway_headers, timeout=30
        ) as http:
            response = await http.post("/v1/broadcasts", json=spec.model_dump(mode="json"))
        if response.status_code != 201:
            raise StackError(f"the gateway refused the broadcast ({response.status_code}): {response.text}")
        workflow_id: str = response.json()["workflow_id"]
        return workflow_id

    def add_worker(self) -> str:
        """Start one more worker process on the same task queues, without metrics (the first
        has their port); its name. They share the route limits through the database
        (``NUDGE_SHARED_ROUTE_LIMITS``); start the stack with ``NUDGE_WORKER_EAGER_ACTIVITIES=false``
        for a broadcast's batches to spread."""
        name = f"worker-{sum(1 for child, _ in self.children if child.startswith('worker')) + 1}"
        self._spawn(name, self._nudge_command("worker"), NUDGE_WORKER_METRICS_PORT="0")
        return name

    def check_ports_free(self, *parts: str) -> None:
        """Refuse to start when a port the stack needs is taken, naming the port and its part
        (else the child dies and the error names whatever it was waiting for)."""
        needed = {
            "temporal": [("Temporal", self.ports.temporal)]
            + ([("Temporal UI", self.ports.ui)] if self.ui else []),
            "simulator": [("simulator", self.ports.simulator)],
            "gateway": [("gateway", self.ports.gateway)],
        }
        for part in parts:
            for name, port in needed.get(part, []):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        raise StackError(
                            f"port {port} ({name}) is already in use: another `nudge up`? "
                            "Stop it, or choose other ports (NUDGE_GATEWAY_PORT, NUDGE_SIMULATOR_PORT, "
                            "NUDGE_TEMPORAL_ADDRESS, NUDGE_TEMPORAL_UI_PORT)"
                        )

    def _temporal_command(self) -> list[str]:
        cmd = [
            find_binary("temporal"),
            "server",
            "start-dev",
            "--db-filename",
            str(self.state_dir / "temporal.db"),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.ports.temporal),
            "--ui-port",
            str(self.ports.ui),
            "--log-level",
            "warn",
        ]
        if self.ui:
            # The UI decodes sealed payloads through the gateway's codec server, in the browser.
            cmd += ["--ui-codec-endpoint", f"{self.gateway_url}/codec/t/{self.codec_token}"]
        else:
            cmd.append("--headless")
        for name, kind in SEARCH_ATTRIBUTES.items():
            cmd += ["--search-attribute", f"{name}={kind}"]
        return cmd

    @staticmethod
    def _nudge_command(name: str) -> list[str]:
        return [sys.executable, "-m", "starter.cli", name]

    def upgrade_database(self) -> None:
        """``nudge db upgrade`` on the stack's database, before the worker and the gateway start
        (they refuse a schema that is behind): the local stack keeps its own schema current."""
        log = self.state_dir / "logs" / "db.log"
        with log.open("ab") as out:
            done = subprocess.run(
                [*self._nudge_command("db"), "upgrade"],
                env=self.child_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            )
        if done.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise StackError(f"`nudge db upgrade` failed ({done.returncode}): " + " / ".join(tail))

    def _spawn(self, name: str, cmd: list[str], **env: str) -> None:
        log = open(self.state_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        proc = subprocess.Popen(
            cmd, env=self.child_env() | env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.children.append((name, proc))

    def _check_alive(self, name: str) -> None:
        for child, proc in self.children:
            if proc.poll() is not None:
                raise StackError(
                    f"{child} exited with code {proc.returncode} while waiting for {name}; "
                    f"see {self.state_dir / 'logs' / (child + '.log')}"
                )

    def _wait_port(self, name: str, port: int, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(name)
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                return
            time.sleep(0.2)
        raise StackError(f"{name} did not open port {port} within {timeout:.0f} s")

    def _wait_http(self, name: str, url: str, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(name)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise StackError(f"{name} did not answer {url} within {timeout:.0f} s")

    def kill_part(self, name: str) -> None:
        """Kill one child at once, as a crash would (SIGKILL: no graceful shutdown); a test's outage."""
        for child, proc in list(self.children):
            if child == name and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.children = [(child, proc) for child, proc in self.children if child != name]

    def stop(self, *, grace: float = 10.0) -> None:
        """Terminate children in reverse start order; kill any that outlive ``grace``."""
        for _, proc in reversed(self.children):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.children.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
