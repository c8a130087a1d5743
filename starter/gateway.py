"""The HTTP gateway: events in, receipts and clicks back, short-link redirects.

Run it with ``nudge gateway`` (uvicorn with uvloop and httptools).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client

from activities.compliance import consent
from activities.compliance.alerts import AlertWebhook
from activities.compliance.complaints import ComplaintPolicy, ComplaintRecorder
from activities.compliance.consent import ConsentIn
from activities.compliance.registry import Registry
from nudge.contracts import OPTED_OUT
from nudge.errors import InvalidPhoneNumber
from nudge.logging import get_logger
from nudge.models import Event, MessageStatus
from nudge.phone import to_e164
from nudge.settings import DEV_CALLBACK_TOKEN, Settings, get_settings
from nudge.store import Customer, create_engine, init_db, read_sessions, session_factory
from nudge.temporal import connect
from starter.consent_api import router as consent_api
from starter.feedback import Feedback
from starter.pauses_api import router as pauses
from starter.registry_api import router as registry_api
from starter.router import EventRouter, RouteResult
from starter.webhooks import router as webhooks
from workflows import JOURNEYS
from workflows.journey import Journey

log = get_logger(__name__)


class EventAccepted(BaseModel):
    event_id: str
    duplicate: bool
    workflow_ids: list[str]
    touched: list[dict[str, Any]]


class SimulatorReceipt(BaseModel):
    id: str
    client_ref: str | None = None
    status: str
    error_code: str | None = None
    at: datetime | None = None

    @field_validator("status")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in _SIM_STATUS:
            raise ValueError(f"unknown status {value!r}; expected one of {sorted(_SIM_STATUS)}")
        return value


_SIM_STATUS = {
    "accepted": MessageStatus.SUBMITTED,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
}


class CustomerIn(BaseModel):
    id: str = Field(min_length=1, max_length=200)
    name: str | None = None
    phone: str | None = None
    lifecycle_stage: str = "new"
    country: str | None = None
    timezone: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    consent: ConsentIn | None = None
    """Marketing consent given with the profile (a sign-up form, a CRM import). Recorded only for
    a customer with no consent on record: changes go through ``/v1/customers/{id}/consent``."""


class CustomerBatch(BaseModel):
    customers: list[CustomerIn] = Field(max_length=10_000)


class Services:
    """What the routes depend on; built once in the lifespan."""

    def __init__(
        self, *, settings: Settings, engine: AsyncEngine, client: Client, journeys: Sequence[type[Journey]]
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = session_factory(engine)
        self.client = client
        self.router = EventRouter(
            client=client,
            sessions=self.sessions,
            journeys=journeys,
            task_queue=settings.task_queue,
            transactional_task_queue=settings.transactional_task_queue,
            overrides=settings.journey_overrides,
        )
        self.journey_categories = {j.name: j.category for j in journeys}
        self.alerts = AlertWebhook(settings.alert_webhook_url.get_secret_value())
        self.complaints = ComplaintRecorder(
            self.sessions, policy=ComplaintPolicy.from_settings(settings), alerts=self.alerts
        )
        self.feedback = Feedback(
            client=client,
            sessions=self.sessions,
            on_opt_out=self.opted_out,
            on_help=self.help_requested,
            complaints=self.complaints,
        )
        self.registry = Registry(self.sessions, routes=settings.effective_routes)

    async def opted_out(self, number: str, reply_id: str) -> None:
        """A STOP-type reply: every customer with this number leaves their marketing journeys
        (the ``opted_out`` event, which marketing journeys listen for)."""
        async with read_sessions(self.sessions)() as session:
            customers = (await session.exec(select(Customer.id).where(Customer.phone == number))).all()
        for customer_id in customers:
            await self.router.route(
                Event(
                    event_id=f"opted_out:{reply_id}:{customer_id}",
                    customer_id=customer_id,
                    name=OPTED_OUT,
                    properties={"reply": reply_id},
                )
            )

    async def help_requested(self, number: str, reply_id: str) -> None:
        """A HELP or INFO reply: the ``help_requested`` event starts the HelpReply journey of the
        number's customer (one answer per number, even when several customers share it)."""
        async with read_sessions(self.sessions)() as session:
            query = select(Customer.id).where(Customer.phone == number).order_by(col(Customer.created_at))
            customer_id = (await session.exec(query)).first()
        if customer_id is None:
            log.info("help_reply_skipped_unknown_number", reply=reply_id)
            return
        await self.router.route(
            Event(
                event_id=f"help_requested:{reply_id}",
                customer_id=customer_id,
                name="help_requested",
                properties={"reply": reply_id},
            )
        )


async def get_services(request: Request) -> Services:
    # Async on purpose, as every dependency here: FastAPI runs a sync one in a worker thread.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def _check_callback_token(settings: Settings) -> None:
    """Refuse to take real Aliyun or Tencent receipts with the development token: anyone could
    forge them (and suppress numbers with forged replies). On loopback it only matters less."""
    if settings.callback_token.get_secret_value() != DEV_CALLBACK_TOKEN:
        return
    real = [
        r.name
        for r in settings.effective_routes
        if r.provider in ("aliyun", "tencent") and not _is_loopback(r.endpoint)
    ]
    if real:
        raise RuntimeError(
            f"NUDGE_CALLBACK_TOKEN is the development default, but routes {', '.join(real)} send through "
            "real providers whose receipts it would protect; set NUDGE_CALLBACK_TOKEN to a secret"
        )
    if not _is_loopback(settings.gateway_url):
        log.warning(
            "callback_token_is_the_default",
            detail="set NUDGE_CALLBACK_TOKEN: the Aliyun and Tencent receipt URLs are as secret as it is",
        )


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def create_app(
    settings: Settings | None = None,
    *,
    client: Client | None = None,
    journeys: Sequence[type[Journey]] = JOURNEYS,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.sqlalchemy_url)
        await init_db(engine)
        temporal = client or await connect(settings, wait=30)
        app.state.services = Services(settings=settings, engine=engine, client=temporal, journeys=journeys)
        log.info("gateway_started", url=settings.gateway_url, temporal=settings.temporal_address)
        _check_callback_token(settings)
        yield
        await app.state.services.alerts.aclose()
        await engine.dispose()

    app = FastAPI(
        title="Nudge gateway",
        version="0.1.0",
        description="Behaviour events in; provider receipts, replies and link clicks back.",
        lifespan=lifespan,
    )

    app.include_router(webhooks)
    app.include_router(consent_api)
    app.include_router(pauses)
    app.include_router(registry_api)

    @app.post("/v1/events", status_code=202, response_model=EventAccepted, tags=["events"])
    async def post_event(event: Event, services: ServicesDep) -> EventAccepted:
        """Store the event once (by ``event_id``), start the journeys it triggers and signal
        the customer's running journeys that wait for it."""
        result: RouteResult = await services.router.route(event)
        return EventAccepted(
            event_id=result.event_id,
            duplicate=result.duplicate,
            workflow_ids=result.workflow_ids,
            touched=[t.model_dump() for t in result.touched],
        )

    @app.post("/v1/webhooks/simulator/status", tags=["webhooks"], include_in_schema=False)
    async def simulator_status(receipt: SimulatorReceipt, services: ServicesDep) -> dict[str, Any]:
        """Delivery receipts from the local carrier simulator's own API (unsigned: only served
        when a ``simulator`` route is configured)."""
        if not any(r.provider == "simulator" for r in services.settings.effective_routes):
            raise HTTPException(404, detail="no simulator route is configured")
        applied = await services.feedback.receipt(
            provider="simulator",
            message_id=receipt.client_ref,
            provider_message_id=receipt.id,
            status=_SIM_STATUS[receipt.status],
            error_code=receipt.error_code,
            at=receipt.at,
            raw=receipt.model_dump(mode="json"),
        )
        return {"ok": True, "applied": applied}

    @app.get("/l/{code}", tags=["links"], response_class=RedirectResponse, status_code=302)
    async def short_link(
        code: str, services: ServicesDep, user_agent: Annotated[str | None, Header()] = None
    ) -> Response:
        """Record a click and redirect to the link's target."""
        target = await services.feedback.click(code, user_agent=user_agent)
        if target is None:
            raise HTTPException(404, detail=f"unknown link code {code!r}")
        return RedirectResponse(target, status_code=302)

    @app.put("/v1/customers/{customer_id}", tags=["customers"])
    async def put_customer(customer_id: str, body: CustomerIn, services: ServicesDep) -> dict[str, Any]:
        """Create or replace a customer profile. Phone numbers are stored in E.164."""
        if body.id != customer_id:
            raise HTTPException(422, detail="customer id in the path and the body differ")
        count = await _upsert_customers(services, [body])
        return {"upserted": count}

    @app.post("/v1/customers:batch", tags=["customers"])
    async def post_customers(batch: CustomerBatch, services: ServicesDep) -> dict[str, Any]:
        """Create or replace many customers at once (used by ``nudge customers import``)."""
        return {"upserted": await _upsert_customers(services, batch.customers)}

    @app.get("/v1/customers/{customer_id}", tags=["customers"])
    async def get_customer(customer_id: str, services: ServicesDep) -> dict[str, Any]:
        async with read_sessions(services.sessions)() as session:
            customer = await session.get(Customer, customer_id)
        if customer is None:
            raise HTTPException(404, detail=f"unknown customer {customer_id!r}")
        return customer.model_dump(mode="json")

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def _upsert_customers(services: Services, customers: Sequence[CustomerIn]) -> int:
    errors = []
    normalised: list[CustomerIn] = []
    for index, customer in enumerate(customers):
        if customer.phone:
            try:
                phone = to_e164(
                    customer.phone, default_region=customer.country or services.settings.default_region
                )
            except InvalidPhoneNumber as exc:
                errors.append({"index": index, "id": customer.id, "error": str(exc)})
                continue
            customer = customer.model_copy(update={"phone": phone})
        normalised.append(customer)
    if errors:
        raise HTTPException(
            422, detail={"message": "invalid customers; nothing was stored", "errors": errors}
        )
    async with services.sessions() as session:
        for customer in normalised:
            row = await session.get(Customer, customer.id) or Customer(id=customer.id)
            for field, value in customer.model_dump(exclude={"id", "consent"}).items():
                setattr(row, field, value)
            session.add(row)
            if customer.consent is not None:
                await session.flush()
                await consent.record(session, customer.id, "granted", customer.consent, first_only=True)
        await session.commit()
    return len(normalised)
