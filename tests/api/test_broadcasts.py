"""``/v1/broadcasts`` and ``nudge broadcast`` on a real Temporal dev server (visibility queries and
schedules, which the time-skipping server lacks), the gateway over loopback, and a worker running
the real ``Broadcast`` against the fake audience of ``tests/workflows/broadcast_fakes.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from click.testing import Result
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleBackfill,
    ScheduleOverlapPolicy,
    ScheduleSpec,
    WorkflowFailureError,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner

from nudge.apikeys import Scope
from nudge.binaries import find_binary
from nudge.broadcasts import BroadcastSpec
from nudge.contracts import SA_BROADCAST, SA_CUSTOMER, SA_JOURNEY, SA_OUTCOME, SA_STEP
from nudge.settings import Settings
from nudge.store import Audience, create_engine, init_db, session_factory
from nudge.temporal import sealed_converter
from starter.api import create_app
from starter.api.services.keys import ApiKeys
from starter.cli import app as cli
from tests.servers import serve
from tests.workflows.broadcast_fakes import FakeAudience
from workflows.broadcast import Broadcast

TEMPLATE = "welcome_back"


@pytest.fixture(scope="module")
async def dev_server(codec_keys: str) -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server, its payloads sealed, with Nudge's search attributes."""
    env = await WorkflowEnvironment.start_local(
        data_converter=sealed_converter(codec_keys),
        dev_server_existing_path=find_binary("temporal"),
        search_attributes=[SA_JOURNEY, SA_CUSTOMER, SA_STEP, SA_OUTCOME, SA_BROADCAST],
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@dataclass
class Stack:
    http: httpx.AsyncClient
    env: WorkflowEnvironment
    audience: FakeAudience
    cli_env: dict[str, str]

    async def nudge(self, *args: str) -> Result:
        """The CLI in a thread (it runs its own event loop), against this stack's Temporal and store."""
        return await asyncio.to_thread(CliRunner().invoke, cli, ["broadcast", *args], env=self.cli_env)

    async def until(self, condition: Callable[[], Any], *, seconds: float = 30) -> Any:
        """Wait (in real time) until ``condition()`` (a value, or an awaitable of one) is truthy."""
        for _ in range(int(seconds / 0.05)):
            found = condition()
            if inspect.isawaitable(found):
                found = await found
            if found:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError("the condition never held")

    async def progress(self, broadcast_id: str) -> dict[str, Any]:
        answer = await self.http.get(f"/v1/broadcasts/{broadcast_id}")
        assert answer.status_code == 200, answer.text
        view: dict[str, Any] = answer.json()
        return view


@pytest.fixture
async def stack(dev_server: WorkflowEnvironment, sqlite_url: str, codec_keys: str) -> AsyncIterator[Stack]:
    queue = f"broadcasts-{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=sqlite_url, task_queue=queue, transactional_task_queue=queue)
    engine: AsyncEngine = create_engine(sqlite_url)
    await init_db(engine)
    sessions = session_factory(engine)
    async with sessions() as session:
        session.add(Audience(name="everyone", kind="list", created_by="tests", updated_by="tests"))
        await session.commit()
    admin, _ = await ApiKeys(sessions, cache_ttl=timedelta(0)).create("tests", [Scope.ADMIN], by="conftest")
    audience = FakeAudience(60)
    worker = Worker(
        dev_server.client, task_queue=queue, workflows=[Broadcast], activities=audience.activities
    )
    cli_env = {
        "NUDGE_TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "NUDGE_CODEC_KEYS": codec_keys,
        "NUDGE_DATABASE_URL": sqlite_url,
        "NUDGE_TASK_QUEUE": queue,
        "COLUMNS": "200",
    }
    async with (
        worker,
        serve(create_app(settings, client=dev_server.client)) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=60) as http,
    ):
        yield Stack(http, dev_server, audience, cli_env)
    await engine.dispose()


async def test_api_starts_a_broadcast_pauses_resumes_and_reads_its_progress(stack: Stack) -> None:
    """POST starts it (201); a pause answers once the blocked batches finished, a second pause is
    refused (409, the reason); resume sends on; the progress and the list show it done with every
    customer sent once; a cancel of the finished broadcast is refused."""
    stack.audience.hold = asyncio.Event()
    body = {"broadcast_id": f"spring-{uuid.uuid4().hex[:6]}", "audience": "everyone", "template": TEMPLATE}
    started = await stack.http.post("/v1/broadcasts", json={**body, "batch_size": 10, "window": 2})
    assert started.status_code == 201, started.text
    broadcast_id = started.json()["broadcast_id"]
    assert started.json()["workflow_id"] == f"broadcast:{broadcast_id}"
    await stack.until(lambda: stack.audience.in_flight == 2)
    pausing = asyncio.create_task(stack.http.post(f"/v1/broadcasts/{broadcast_id}:pause"))
    await asyncio.sleep(0.5)
    assert not pausing.done()
    stack.audience.hold.set()
    paused = await pausing
    assert paused.status_code == 200 and paused.json()["state"] == "paused", paused.text
    again = await stack.http.post(f"/v1/broadcasts/{broadcast_id}:pause")
    assert again.status_code == 409 and "paused already" in again.json()["detail"]
    view = await stack.progress(broadcast_id)
    assert view["status"] == "running" and view["progress"]["state"] == "paused"
    assert (await stack.http.post(f"/v1/broadcasts/{broadcast_id}:resume")).json()["state"] == "running"

    async def finished() -> dict[str, Any] | None:
        view = await stack.progress(broadcast_id)
        return view if view["status"] == "completed" else None

    done = await stack.until(finished)
    assert done["progress"]["counts"] == {"sent": 60} and done["processed"] == 60
    assert (done["progress"]["state"], done["template"], done["audience"]) == ("done", TEMPLATE, "everyone")
    assert set(stack.audience.sent_to(broadcast_id).values()) == {1}

    async def listed() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = (await stack.http.get("/v1/broadcasts")).json()
        return (
            rows
            if any(r["broadcast_id"] == broadcast_id and r["status"] == "completed" for r in rows)
            else None
        )

    rows = await stack.until(listed)
    assert next(r for r in rows if r["broadcast_id"] == broadcast_id)["progress"]["counts"] == {"sent": 60}
    cancel = await stack.http.post(f"/v1/broadcasts/{broadcast_id}:cancel")
    assert cancel.status_code == 409 and "finished" in cancel.json()["detail"]
    duplicate = await stack.http.post("/v1/broadcasts", json=body)
    assert duplicate.status_code == 409 and "exists already" in duplicate.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"audience": "nobody"}, "audience", "no audience named 'nobody'"),
        ({"template": "no_such_template"}, "template", "no template 'no_such_template'"),
        ({"route": "carrier-pigeon"}, "route", "no route 'carrier-pigeon'"),
        ({"deadline": "2020-01-01T00:00:00Z"}, "deadline", "the deadline must come after the start"),
        ({"broadcast_id": "Has Spaces"}, "broadcast_id", "String should match pattern"),
        ({"params": {"nested": {"x": 1}}}, "params", "Input should be a valid"),
    ],
)
async def test_api_refuses_a_broadcast_that_cannot_work(
    stack: Stack, change: dict[str, Any], field: str, reason: str
) -> None:
    """An unknown audience, template or route, a deadline before the start, a bad id, nested
    params: 422 naming the field, and nothing started."""
    body = {"audience": "everyone", "template": TEMPLATE, **change}
    answer = await stack.http.post("/v1/broadcasts", json=body)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert any(field in d["loc"] and reason in d["msg"] for d in detail), detail
    assert stack.audience.pages == []


async def test_api_answers_404_for_an_unknown_broadcast(stack: Stack) -> None:
    """Reading or pausing a broadcast that never was: 404 with its id."""
    assert (await stack.http.get("/v1/broadcasts/never-was")).status_code == 404
    answer = await stack.http.post("/v1/broadcasts/never-was:pause")
    assert answer.status_code == 404 and "never-was" in answer.json()["detail"]


async def test_cli_starts_pauses_cancels_and_watches(stack: Stack) -> None:
    """``start`` prints the id; ``pause`` and ``cancel`` print the progress they answered; ``status``
    and ``list`` show it cancelled, the waiting expired; ``watch`` of a closed broadcast ends at once
    with its figures; a refusal exits 2 with the reason."""
    stack.audience.due = lambda customer, request: (
        request.started_at + timedelta(hours=1) if customer < "c00020" else None
    )
    started = await stack.nudge(
        "start", "--audience", "everyone", "--template", TEMPLATE, "--id", "cli-run", "--rate", "600/min",
        "--batch-size", "10", "--local-time", "10:00", "--param", "start_url=https://x.example",
    )  # fmt: skip
    assert started.exit_code == 0, started.output
    assert "broadcast cli-run started" in started.output
    await stack.until(lambda: len(stack.audience.batches) >= 2)
    spec = stack.audience.batches[0].spec
    assert (spec.rate, spec.local_time, spec.params) == (
        10.0,
        time(10, 0),
        {"start_url": "https://x.example"},
    )
    paused = await stack.nudge("pause", "cli-run")
    assert paused.exit_code == 0 and "cli-run: paused" in paused.output, paused.output
    cancelled = await stack.nudge("cancel", "cli-run")
    assert cancelled.exit_code == 0 and "cli-run: cancelled" in cancelled.output, cancelled.output
    assert [e.reason for e in stack.audience.expired] == ["cancelled"]
    assert "expired" in cancelled.output
    status = await stack.nudge("status", "cli-run")
    assert status.exit_code == 0 and "broadcast cli-run: cancelled" in status.output, status.output
    watched = await stack.nudge("watch", "cli-run", "--every", "0.1")
    assert watched.exit_code == 0 and "cli-run cancelled" in watched.output, watched.output
    listed = await stack.nudge("list")
    assert "broadcast:cli-run" in listed.output, listed.output
    refused = await stack.nudge("resume", "cli-run")
    assert refused.exit_code == 2 and "it has finished (completed)" in refused.output, refused.output
    bad = await stack.nudge("start", "--audience", "everyone", "--template", TEMPLATE, "--rate", "fast")
    assert bad.exit_code == 2 and "--rate: 'fast' is not a rate" in bad.output


async def test_a_schedule_starts_runs_with_broadcast_ids_of_their_own(stack: Stack) -> None:
    """``schedule weekly --cron`` makes a Temporal Schedule; two backfilled Mondays start two runs,
    ``weekly-<date>-100000``, each sending to every customer once under its own id; ``status``
    finds a run by that id, ``schedule list`` shows the runs, ``schedule delete`` removes it."""
    name = f"weekly-{uuid.uuid4().hex[:4]}"
    made = await stack.nudge(
        "schedule", name, "--cron", "0 10 * * 1", "--audience", "everyone", "--template", TEMPLATE
    )
    assert made.exit_code == 0, made.output
    assert f"broadcast:{name}" in made.output
    handle = stack.env.client.get_schedule_handle(f"broadcast:{name}")
    await handle.backfill(
        ScheduleBackfill(
            start_at=datetime(2026, 11, 22, tzinfo=UTC),
            end_at=datetime(2026, 12, 1, tzinfo=UTC),
            overlap=ScheduleOverlapPolicy.ALLOW_ALL,
        )
    )
    runs = [f"{name}-20261123-100000", f"{name}-20261130-100000"]

    await stack.until(lambda: all(len(stack.audience.sent_to(run)) == 60 for run in runs), seconds=60)
    assert {run: set(stack.audience.sent_to(run).values()) for run in runs} == {run: {1} for run in runs}

    async def found() -> Result | None:
        status = await stack.nudge("status", runs[1])
        return status if status.exit_code == 0 else None

    status = await stack.until(found)
    assert f"workflow broadcast:{name}-2026-11-30T10:00:00Z" in status.output, status.output
    listed = await stack.nudge("schedule", "list")
    assert runs[0] in listed.output and "0 10 * * 1 (UTC)" in listed.output, listed.output
    again = await stack.nudge(
        "schedule", name, "--cron", "0 10 * * 1", "--audience", "everyone", "--template", TEMPLATE
    )
    assert again.exit_code == 2 and "exists already" in again.output
    deleted = await stack.nudge("schedule", "delete", name)
    assert deleted.exit_code == 0 and name not in (await stack.nudge("schedule", "list")).output


async def test_a_schedule_of_another_shape_fails_its_runs_without_sending(stack: Stack) -> None:
    """A schedule made by hand whose action's workflow id is not ``broadcast:<name>``: its run
    fails, naming why, and sends nothing (all its runs would share one broadcast's keys)."""
    spec = BroadcastSpec(broadcast_id="stray", audience="everyone", template=TEMPLATE)
    action = ScheduleActionStartWorkflow(
        Broadcast.run, spec, id="stray-broadcast", task_queue=stack.cli_env["NUDGE_TASK_QUEUE"]
    )
    schedule_id = f"stray-{uuid.uuid4().hex[:4]}"
    handle = await stack.env.client.create_schedule(
        schedule_id,
        Schedule(action=action, spec=ScheduleSpec(cron_expressions=["0 10 * * 1"])),
        trigger_immediately=True,
    )
    try:

        async def run_id() -> str | None:
            actions = (await handle.describe()).info.recent_actions
            return getattr(actions[0].action, "workflow_id", None) if actions else None

        workflow_id = await stack.until(run_id)
        with pytest.raises(WorkflowFailureError) as failed:
            await stack.env.client.get_workflow_handle(workflow_id).result()
        assert "a schedule started workflow" in str(failed.value.cause)
        assert stack.audience.batches == []
    finally:
        await handle.delete()
