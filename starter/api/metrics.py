"""The gateway's ``/metrics`` (Prometheus text, a ``read`` key) and the webhook latency it shows:
an ASGI middleware times each provider webhook from the request to the last byte of the answer."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from nudge.metrics import WEBHOOK_SECONDS
from starter.api.auth import AUTH_ERRORS, NEEDS_READ
from starter.api.limits import ASGIApp, Message, Receive, Scope, Send

PROVIDERS = frozenset({"aliyun", "tencent", "twilio", "simulator"})
KINDS = frozenset({"report", "up", "reply", "status", "inbound"})
router = APIRouter(tags=["metrics"], responses=AUTH_ERRORS)


@router.get(
    "/metrics",
    dependencies=NEEDS_READ,
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}},
)
async def metrics() -> Response:
    """Prometheus metrics (scrape with the key as a bearer token): events, receipts, clicks,
    replies, conversions, webhook latency, pauses, and the sends of a worker in this process."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def webhook_labels(path: str) -> tuple[str, str] | None:
    """(provider, kind) of a webhook path, e.g. ``/v1/webhooks/aliyun/<token>/report``; None for
    any other path. Unknown parts read ``other``: a label never takes a client's text."""
    parts = path.strip("/").split("/")
    if len(parts) < 4 or parts[:2] != ["v1", "webhooks"]:
        return None
    provider, kind = parts[2], parts[-1]
    return (provider if provider in PROVIDERS else "other", kind if kind in KINDS else "other")


class TimeWebhooks:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        labels = webhook_labels(scope["path"]) if scope["type"] == "http" else None
        if labels is None:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                WEBHOOK_SECONDS.labels(*labels).observe(time.perf_counter() - start)

        await self.app(scope, receive, timed)
