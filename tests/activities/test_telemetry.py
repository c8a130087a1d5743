"""The worker's /metrics over loopback HTTP: Nudge's metrics, the breakers read at scrape time,
and the Temporal SDK's runtime metrics from a real client's runtime, in one answer."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment

from activities.send import SendActivities
from activities.telemetry import BreakerCollector, loopback_port, serve_metrics
from nudge.routes import local_routes
from nudge.settings import Settings
from tests.activities.sends import run
from tests.activities.test_send_message import add_customer, send_request
from worker import router_for


async def test_worker_metrics_join_breakers_and_the_sdks_runtime_metrics(env: WorkflowEnvironment) -> None:
    """After a client call on a runtime with Prometheus, /metrics holds ``temporal_request``
    from the SDK; a tripped breaker reads 1, a closed one 0; the families parse."""
    sdk_address = f"127.0.0.1:{loopback_port()}"
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=sdk_address)))
    client = await Client.connect(env.client.service_client.config.target_host, runtime=runtime)
    await client.workflow_service.get_system_info(GetSystemInfoRequest())
    async with httpx.AsyncClient() as http:
        router = router_for(Settings(routes=local_routes("http://127.0.0.1:9")), http)
        router.routes[0].breaker.trip("isv.ACCOUNT_ABNORMAL: test")
        collector = BreakerCollector(router)
        REGISTRY.register(collector)
        port = loopback_port()
        runner = await serve_metrics("127.0.0.1", port, sdk_metrics_url=f"http://{sdk_address}/metrics")
        try:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
        finally:
            await runner.cleanup()
            REGISTRY.unregister(collector)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert "temporal_request" in names and "nudge_send_decisions" in names
    breakers = {
        s.labels["route"]: s.value
        for family in text_string_to_metric_families(response.text)
        if family.name == "nudge_route_breaker_open"
        for s in family.samples
    }
    assert breakers == {r.name: (1.0 if i == 0 else 0.0) for i, r in enumerate(router.routes)}


async def test_worker_metrics_still_answer_when_the_sdks_endpoint_is_down() -> None:
    """An unreachable SDK endpoint leaves Nudge's own metrics in the answer."""
    port = loopback_port()
    runner = await serve_metrics(
        "127.0.0.1", port, sdk_metrics_url=f"http://127.0.0.1:{loopback_port()}/metrics"
    )
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
    finally:
        await runner.cleanup()
    assert response.status_code == 200 and "nudge_messages_sent" in response.text


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_send_counts_its_decision_provider_and_latency_once(
    sends: SendActivities, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """One sent message moves the decision, sent and provider-latency counters by one; running
    the same send again (a retry that finds the row) counts nothing more."""
    await add_customer(sessions)
    decided = ("nudge_send_decisions_total", {"decision": "sent", "reason": "", "category": "marketing"})
    sent = ("nudge_messages_sent_total", {"provider": "simulator", "route": "sim", "category": "marketing"})
    timed = (
        "nudge_provider_request_seconds_count",
        {"provider": "simulator", "route": "sim", "outcome": "accepted"},
    )
    before = [_value(name, **labels) for name, labels in (decided, sent, timed)]
    await run(sends, send_request())
    await run(sends, send_request())
    after = [_value(name, **labels) for name, labels in (decided, sent, timed)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
