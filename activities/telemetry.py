"""The worker's ``/metrics``: Nudge's own metrics (``nudge.metrics``, the routes' breakers read at
scrape time) followed by the Temporal SDK's runtime metrics, which the SDK serves on a loopback
port of its own (``temporalio.runtime.PrometheusConfig``); one endpoint for Prometheus to scrape.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from activities.breaker import BreakerState
from activities.routing import Router
from nudge.logging import get_logger

log = get_logger(__name__)
_STATE = {BreakerState.CLOSED: 0.0, BreakerState.HALF_OPEN: 0.5, BreakerState.OPEN: 1.0}


def loopback_port() -> int:
    """A free port on 127.0.0.1, for the SDK's own metrics server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BreakerCollector(Collector):
    """``nudge_route_breaker_open{route}``: 1 open, 0.5 half-open (one probe allowed), 0 closed."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "nudge_route_breaker_open",
            "A route's circuit breaker: 1 open, 0.5 half-open, 0 closed",
            labels=["route"],
        )
        for route in self._router.routes:
            family.add_metric([route.name], _STATE[route.breaker.state])
        yield family


async def serve_metrics(host: str, port: int, *, sdk_metrics_url: str | None) -> web.AppRunner:
    """Serve ``GET /metrics`` on ``host:port`` until the returned runner is cleaned up."""
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        if sdk_metrics_url:
            try:
                async with session.get(sdk_metrics_url) as answer:
                    body += await answer.read()
            except aiohttp.ClientError as exc:  # still answer with Nudge's own
                log.warning("sdk_metrics_unavailable", url=sdk_metrics_url, error=str(exc))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.on_cleanup.append(lambda _: session.close())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("metrics_served", url=f"http://{host}:{port}/metrics")
    return runner
