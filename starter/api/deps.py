"""What the routes depend on: the services, built once in the app's lifespan, and one
``Annotated`` dependency for each part a route takes.

Every dependency is async on purpose: FastAPI runs a sync one (a class, too) in a worker thread
per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from activities.compliance.alerts import AlertWebhook
from activities.compliance.complaints import ComplaintPolicy, ComplaintRecorder
from activities.compliance.registry import Registry
from activities.receipts import Receipts
from nudge.settings import Settings
from nudge.store import session_factory
from starter.api.services.clicks import Clicks
from starter.api.services.experiments import Experiments
from starter.api.services.intake import EventRouter
from starter.api.services.keys import ApiKeys
from starter.api.services.messages import Messages
from starter.api.services.pauses import Pauses
from starter.api.services.replies import Replies
from starter.api.services.reports import Reports
from starter.api.services.series import Series
from starter.api.services.timeline import Timeline
from workflows.journey import Journey
from workflows.journeys import seeded_templates


class Services:
    """What the routes depend on; built once in the lifespan."""

    def __init__(
        self, *, settings: Settings, engine: AsyncEngine, client: Client, journeys: Sequence[type[Journey]]
    ) -> None:
        self.settings = settings
        self.sessions = session_factory(engine)
        self.client = client
        self.codec = client.data_converter.payload_codec
        """The payload codec the client seals with: the codec server's (``routes/codec.py``)."""
        self.keys = ApiKeys(self.sessions, cache_ttl=settings.api_key_cache)
        self.intake = EventRouter(
            client=client,
            sessions=self.sessions,
            journeys=journeys,
            task_queue=settings.task_queue,
            transactional_task_queue=settings.transactional_task_queue,
            overrides=settings.journey_overrides,
            attribution_window=settings.attribution_window,
            sinks=settings.stream_sinks,
        )
        self._alerts = AlertWebhook(settings.alert_webhook_url.get_secret_value())
        complaints = ComplaintRecorder(
            self.sessions, policy=ComplaintPolicy.from_settings(settings), alerts=self._alerts
        )
        sinks = settings.stream_sinks  # what each records is published to the stream's sinks
        self.receipts = Receipts(client=client, sessions=self.sessions, complaints=complaints, sinks=sinks)
        self.replies = Replies(sessions=self.sessions, intake=self.intake, complaints=complaints, sinks=sinks)
        self.clicks = Clicks(client=client, sessions=self.sessions, ip_key=settings.ip_key, sinks=sinks)
        self.reports = Reports(self.sessions)
        self.series = Series(self.sessions)
        self.messages = Messages(self.sessions)
        self.timeline = Timeline(self.sessions)
        self.experiments = Experiments(self.sessions, min_lift=settings.experiment_min_lift)
        self.registry = Registry(
            self.sessions, builtins=seeded_templates(journeys), routes=settings.effective_routes
        )
        self.pauses = Pauses(
            self.sessions,
            registry=self.registry,
            journeys={j.name: j.category for j in journeys},
            routes=[r.name for r in settings.effective_routes],
        )

    async def aclose(self) -> None:
        """Close what the services hold open (the alert webhook's HTTP client); the engine is the
        lifespan's to dispose of."""
        await self._alerts.aclose()


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def _settings(services: ServicesDep) -> Settings:
    return services.settings


async def _sessions(services: ServicesDep) -> async_sessionmaker[AsyncSession]:
    return services.sessions


async def _intake(services: ServicesDep) -> EventRouter:
    return services.intake


async def _receipts(services: ServicesDep) -> Receipts:
    return services.receipts


async def _replies(services: ServicesDep) -> Replies:
    return services.replies


async def _clicks(services: ServicesDep) -> Clicks:
    return services.clicks


async def _reports(services: ServicesDep) -> Reports:
    return services.reports


async def _series(services: ServicesDep) -> Series:
    return services.series


async def _messages(services: ServicesDep) -> Messages:
    return services.messages


async def _timeline(services: ServicesDep) -> Timeline:
    return services.timeline


async def _experiments(services: ServicesDep) -> Experiments:
    return services.experiments


async def _registry(services: ServicesDep) -> Registry:
    return services.registry


async def _pauses(services: ServicesDep) -> Pauses:
    return services.pauses


async def _keys(services: ServicesDep) -> ApiKeys:
    return services.keys


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
IntakeDep = Annotated[EventRouter, Depends(_intake)]
ReceiptsDep = Annotated[Receipts, Depends(_receipts)]
RepliesDep = Annotated[Replies, Depends(_replies)]
ClicksDep = Annotated[Clicks, Depends(_clicks)]
ReportsDep = Annotated[Reports, Depends(_reports)]
SeriesDep = Annotated[Series, Depends(_series)]
MessagesDep = Annotated[Messages, Depends(_messages)]
TimelineDep = Annotated[Timeline, Depends(_timeline)]
ExperimentsDep = Annotated[Experiments, Depends(_experiments)]
RegistryDep = Annotated[Registry, Depends(_registry)]
PausesDep = Annotated[Pauses, Depends(_pauses)]
KeysDep = Annotated[ApiKeys, Depends(_keys)]
