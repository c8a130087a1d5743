"""The worker: runs the journeys and the activities, with their dependencies injected.

It polls two task queues: the main one, and the transactional lane (``transactional_task_queue``),
where transactional journeys and their sends run on slots of their own, so that a marketing blast
never delays a payment confirmation.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack, suppress
from datetime import timedelta
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport
from prometheus_client import REGISTRY
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
)
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.broadcast import BroadcastActivities
from activities.compliance.alerts import AlertWebhook
from activities.compliance.complaints import ComplaintPolicy, ComplaintRecorder
from activities.compliance.pauses import PauseCache
from activities.compliance.registry import Registry
from activities.crm import CrmActivities
from activities.experiments import ExperimentActivities
from activities.receipt_sweep import ReceiptSweeper
from activities.receipts import Receipts
from activities.route_limits import BreakerSync, SharedRateLimiter
from activities.routing import Router, build_router
from activities.send import SendActivities
from activities.telemetry import BreakerCollector, loopback_port, serve_metrics
from nudge.contracts import ReceiptSweep
from nudge.gc_tuning import tune_gc
from nudge.logging import configure_logging, get_logger
from nudge.settings import Settings, get_settings
from nudge.store import create_engine, session_factory
from nudge.store.schema import require as require_schema
from nudge.temporal import connect
from workflows import JOURNEYS
from workflows.broadcast import Broadcast
from workflows.journey import Journey
from workflows.journeys import seeded_templates
from workflows.maintenance import RECEIPT_SCHEDULE_ID, ReconcileReceipts

log = get_logger("worker")

MARKETING_SLOTS = 200
TRANSACTIONAL_SLOTS = 50

WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows", "nudge")
)
"""The sandbox re-imports a workflow's modules for every new workflow run: in a profile of this
worker under load, re-creating the three journey classes (``workflow.defn`` and their pydantic
``Config``) took a quarter of its CPU. The journeys, their runtime and the shared kernel hold no
module state, so the production worker imports them once. The tests and the replayer run them
fully sandboxed (``starter.testing``, ``tests/workflows/test_replay.py``), where the sandbox's
determinism checks still catch a clock, a random number or I/O in a journey."""


def provider_client(settings: Settings) -> httpx.AsyncClient:
    """The providers' HTTP client: httpx's API on aiohttp's transport, which holds up at high
    concurrency where httpx's own pool slows down (encode/httpx#3215)."""
    timeout = httpx.Timeout(settings.send_timeout.total_seconds(), connect=5.0)
    return httpx.AsyncClient(transport=AiohttpTransport(), timeout=timeout)


def status_callbacks(settings: Settings) -> dict[str, str]:
    """Per-message receipt URLs, for the providers that take one with each send."""
    return {
        "twilio": settings.callback_url("twilio", "status"),
        "simulator": f"{settings.gateway_url}/v1/webhooks/simulator/status",
    }


def router_for(settings: Settings, http: httpx.AsyncClient) -> Router:
    router = build_router(
        settings.effective_routes,
        http,
        simulator_callback=status_callbacks(settings)["simulator"],
        breaker_threshold=settings.breaker_threshold,
        breaker_cooldown=settings.breaker_cooldown.total_seconds(),
        account_cooldown=settings.account_pause.total_seconds(),
    )
    for route in router.routes:
        # NUDGE_LOOKUP_GRACES: how long a lost answer stays pending before a resend, per provider.
        grace = settings.lookup_graces.get(route.config.provider)
        if grace is not None:
            route.provider.lookup_grace = grace
    return router


async def share_route_limits(router: Router, settings: Settings, stack: AsyncExitStack) -> None:
    """Pace every route and keep its breaker in the database every worker shares
    (``activities/route_limits.py``), on a small pool of its own."""
    engine = create_engine(settings.sqlalchemy_url)
    stack.push_async_callback(engine.dispose)
    for route in router.routes:
        route.limiter = SharedRateLimiter(route.name, route.config.tps, engine)
    sync = BreakerSync(engine, router)
    sync.attach()
    await sync.refresh()  # a breaker open elsewhere holds from the first send
    task = asyncio.create_task(sync.run(), name="route-breakers")

    async def stop() -> None:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await sync.aclose()

    stack.push_async_callback(stop)


async def build_workers(
    client: Client,
    settings: Settings,
    stack: AsyncExitStack,
    *,
    journeys: Sequence[type[Journey]] = JOURNEYS,
) -> list[Worker]:
    """The main worker and the transactional lane's, sharing one store, router and HTTP client."""
    http = await stack.enter_async_context(provider_client(settings))
    # One router for both lanes: they share each route's rate limit (where the transactional lane
    # goes first) and its circuit breaker.
    router = router_for(settings, http)
    if settings.shared_route_limits:
        await share_route_limits(router, settings, stack)
    collector = BreakerCollector(router)
    REGISTRY.register(collector)
    stack.callback(REGISTRY.unregister, collector)
    # A provider's opt-out code at send time can open the complaint-rate breaker, and alert.
    alerts = AlertWebhook(settings.alert_webhook_url.get_secret_value())
    stack.push_async_callback(alerts.aclose)
    policy = ComplaintPolicy.from_settings(settings)
    lanes = [(settings.task_queue, MARKETING_SLOTS)]
    if settings.transactional_task_queue != settings.task_queue:
        lanes.append((settings.transactional_task_queue, TRANSACTIONAL_SLOTS))
    workers = []
    for task_queue, slots in lanes:
        # Each lane has its own connection pool too, so a flood never queues a payment
        # confirmation behind it for a database connection.
        engine = create_engine(settings.sqlalchemy_url)
        stack.push_async_callback(engine.dispose)
        sessions = session_factory(engine)
        # A registry per lane as well: each reads its snapshot on its own connections.
        registry = Registry(sessions, builtins=seeded_templates(journeys), routes=settings.effective_routes)
        await registry.seed()
        complaints = ComplaintRecorder(sessions, policy=policy, alerts=alerts)
        sends = SendActivities(
            sessions,
            router,
            link_base_url=settings.gateway_url,
            registry=registry,
            status_callbacks=status_callbacks(settings),
            quiet_hours=settings.quiet_hours,
            caps=settings.frequency_caps,
            complaints=complaints,
            pauses=PauseCache(sessions),
            sinks=settings.stream_sinks,
        )
        activities: list[Callable[..., Any]] = [
            sends.send_message,
            CrmActivities(sessions).get_profile,
            ExperimentActivities(sessions).assign_variant,
        ]
        workflows: list[type] = list(journeys)
        if task_queue == settings.task_queue:
            # The main lane also runs the worker's own schedules (workflows/maintenance.py).
            receipts = Receipts(
                client=client, sessions=sessions, complaints=complaints, sinks=settings.stream_sinks
            )
            activities.append(ReceiptSweeper(sessions, router, receipts).reconcile_receipts)
            workflows.append(ReconcileReceipts)
            # Broadcasts run on the main lane: their batches must never take the transactional slots.
            workflows.append(Broadcast)
            broadcasts = BroadcastActivities(
                sessions,
                router,
                registry=registry,
                link_base_url=settings.gateway_url,
                status_callbacks=status_callbacks(settings),
                quiet_hours=settings.quiet_hours,
                caps=settings.frequency_caps,
                complaints=complaints,
                pauses=PauseCache(sessions),
                sinks=settings.stream_sinks,
            )
            activities += [
                broadcasts.broadcast_page,
                broadcasts.send_broadcast_batch,
                broadcasts.expire_broadcast,
                broadcasts.broadcast_counts,
            ]
        workers.append(
            Worker(
                client,
                task_queue=task_queue,
                workflows=workflows,
                activities=activities,
                max_concurrent_activities=slots,
                max_concurrent_local_activities=slots,
                max_cached_workflows=settings.worker_cached_workflows,
                workflow_runner=WORKFLOW_RUNNER,
                # Off, a broadcast's batches go to any process polling the queue, not only its own.
                disable_eager_activity_execution=(
                    task_queue == settings.task_queue and not settings.worker_eager_activities
                ),
            )
        )
    return workers


async def ensure_schedules(client: Client, settings: Settings) -> None:
    """Create or update the receipt sweep's schedule to match the settings (0 removes it)."""
    handle = client.get_schedule_handle(RECEIPT_SCHEDULE_ID)
    every = settings.receipt_reconcile_every
    if every <= timedelta(0):
        with suppress(RPCError):
            await handle.delete()
            log.info("schedule_removed", schedule=RECEIPT_SCHEDULE_ID)
        return
    sweep = ReceiptSweep(after=settings.receipt_reconcile_after, within=settings.receipt_reconcile_for)
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcileReceipts.run,
            sweep,
            id=f"{RECEIPT_SCHEDULE_ID}-run",
            task_queue=settings.task_queue,
            execution_timeout=timedelta(hours=1),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # A sweep still running when the next is due is not doubled.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(RECEIPT_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:
        # The new spec and action; a pause an operator set in the UI stays.
        await handle.update(
            lambda current: ScheduleUpdate(
                schedule=dataclasses.replace(schedule, state=current.description.schedule.state)
            )
        )
    log.info("schedule_ready", schedule=RECEIPT_SCHEDULE_ID, every_s=every.total_seconds())


async def main() -> None:
    settings = get_settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    # Before anything else: a schema behind the code is refused with the command to run.
    await require_schema(settings.sqlalchemy_url)
    runtime, sdk_metrics_url = None, None
    if settings.worker_metrics_port:
        # The SDK serves its runtime metrics on a loopback port of its own; /metrics adds them.
        sdk_address = f"127.0.0.1:{loopback_port()}"
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=sdk_address)))
        sdk_metrics_url = f"http://{sdk_address}/metrics"
    client = await connect(settings, wait=60, runtime=runtime)
    async with AsyncExitStack() as stack:
        if settings.worker_metrics_port:
            runner = await serve_metrics(
                settings.worker_metrics_host, settings.worker_metrics_port, sdk_metrics_url=sdk_metrics_url
            )
            stack.push_async_callback(runner.cleanup)
        workers = await build_workers(client, settings, stack)
        await ensure_schedules(client, settings)
        tune_gc()  # everything the worker keeps is built: out of the collector's way
        log.info(
            "worker_started",
            task_queues=[w.task_queue for w in workers],
            journeys=[j.name for j in JOURNEYS],
            routes=[r.name for r in settings.effective_routes],
        )
        await asyncio.gather(*(worker.run() for worker in workers))


if __name__ == "__main__":
    asyncio.run(main())
