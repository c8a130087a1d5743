"""The gateway's app factory: the lifespan that builds the services, and one router per resource.

Run it with ``nudge gateway`` (uvicorn with uvloop and httptools).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from temporalio.client import Client

from nudge.logging import get_logger
from nudge.settings import Settings, get_settings
from nudge.store import create_engine
from nudge.store.schema import check as check_schema
from nudge.temporal import connect
from starter.api.auth import Problem
from starter.api.cors import CodecCORS
from starter.api.deps import Services
from starter.api.docs import add_offline_docs
from starter.api.errors import ValidationProblem, http_problem, validation_problem
from starter.api.limits import BodyLimit
from starter.api.metrics import TimeWebhooks
from starter.api.metrics import router as metrics_router
from starter.api.nul import RefuseNul
from starter.api.routes import (
    audiences,
    broadcasts,
    codec,
    consent,
    customers,
    events,
    experiments,
    health,
    imports,
    keys,
    links,
    messages,
    pauses,
    reports,
    segment,
    signatures,
    templates,
)
from starter.api.routes.webhooks import aliyun, simulator, tencent, twilio
from starter.api.routes.webhooks.common import check_callback_token
from starter.api.services.imports import shutdown_pools
from starter.dashboard import mount as mount_dashboard
from starter.stream import StreamDispatcher
from workflows import JOURNEYS
from workflows.journey import Journey

log = get_logger(__name__)
ROUTERS = (
    aliyun.router,
    twilio.router,
    tencent.router,
    consent.router,
    pauses.router,
    reports.router,
    messages.router,
    experiments.router,
    templates.router,
    signatures.router,
    events.router,
    segment.router,
    simulator.router,
    links.router,
    customers.router,
    imports.router,
    audiences.router,
    broadcasts.router,
    keys.router,
    codec.router,
    health.router,
    metrics_router,
)
"""In the order the OpenAPI document lists them (and the order paths are matched in)."""


def create_app(
    settings: Settings | None = None,
    *,
    client: Client | None = None,
    journeys: Sequence[type[Journey]] = JOURNEYS,
) -> FastAPI:
    """The gateway app: events in; provider receipts, replies and link clicks back; the admin API.

    Args:
        settings: The settings; the environment's (``NUDGE_*``) when not given.
        client: A connected Temporal client; connected in the lifespan when not given.
        journeys: The journeys events may start and signal.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.sqlalchemy_url)
        try:
            await check_schema(engine)  # `nudge gateway` checked already; an embedding app may not
        except BaseException:
            await engine.dispose()
            raise
        temporal = client or await connect(settings, wait=30)
        services = Services(settings=settings, engine=engine, client=temporal, journeys=journeys)
        app.state.services = services
        log.info("gateway_started", url=settings.gateway_url, temporal=settings.temporal_address)
        check_callback_token(settings)
        if settings.local_admin_key and await services.keys.ensure_local_admin(settings.admin_key_path):
            log.info("local_admin_key_created", path=str(settings.admin_key_path))
        # The stream out, only when a sink is configured: it delivers what every process recorded.
        if stream := StreamDispatcher.from_settings(settings, services.sessions):
            stream.start()
        try:
            yield
        finally:
            if stream:
                await stream.aclose()
            await services.aclose()
            # The import pools are the process's (one gateway app a process): stopped with it.
            await shutdown_pools()
            await engine.dispose()

    app = FastAPI(
        title="Nudge gateway",
        version="0.1.0",
        description="Behaviour events in; provider receipts, replies and link clicks back.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        responses={
            413: {"model": Problem, "description": "The body is over NUDGE_MAX_BODY_BYTES."},
            422: {"model": ValidationProblem, "description": "The request does not fit the schema."},
        },
    )
    add_offline_docs(app)
    for router in ROUTERS:
        app.include_router(router)
    mount_dashboard(app)
    app.add_exception_handler(RequestValidationError, validation_problem)
    app.add_exception_handler(HTTPException, http_problem)
    # Inside the body limit, so that it reads only bodies already capped.
    app.add_middleware(RefuseNul)
    app.add_middleware(TimeWebhooks)
    app.add_middleware(BodyLimit, api=settings.max_body_bytes, webhooks=settings.max_webhook_body_bytes)
    # The Temporal UI calls the codec server from the browser; its origins alone may read answers.
    app.add_middleware(CodecCORS, origins=settings.effective_codec_origins)
    return app
