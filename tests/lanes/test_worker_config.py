"""The workers ``worker.py`` builds: eager activity execution on the main lane follows
``NUDGE_WORKER_EAGER_ACTIVITIES``, and the transactional lane keeps it whatever the setting."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from temporalio.testing import WorkflowEnvironment

from nudge.settings import Settings
from nudge.store import create_engine, init_db
from worker import build_workers


@pytest.mark.parametrize("eager", [True, False])
async def test_eager_activities_follow_the_setting_on_the_main_lane_only(
    env: WorkflowEnvironment, sqlite_url: str, eager: bool
) -> None:
    settings = Settings(
        database_url=sqlite_url,
        task_queue=f"main-{eager}",
        transactional_task_queue=f"payments-{eager}",
        worker_eager_activities=eager,
        worker_metrics_port=0,
    )
    engine = create_engine(sqlite_url)
    await init_db(engine)  # `nudge db upgrade`: the worker refuses a schema behind
    await engine.dispose()
    async with AsyncExitStack() as stack:
        workers = await build_workers(env.client, settings, stack)
        disabled = {w.task_queue: w.config()["disable_eager_activity_execution"] for w in workers}
    assert disabled == {f"main-{eager}": not eager, f"payments-{eager}": False}
