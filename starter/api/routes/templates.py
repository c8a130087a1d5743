"""Templates in the registry, and their review.

GET  /v1/templates[?code=]                      every variant
GET  /v1/templates/{code}?language=             one variant (the default without ``language``)
PUT  /v1/templates/{code}?language=             create, or edit (an edit of the text is a new draft)
POST /v1/templates/{code}:submit|:approve?language=
POST /v1/templates/{code}:reject?language=      {"reason": "..."}
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from nudge.models import Category
from nudge.routes import ProviderName
from nudge.store import SmsTemplate
from nudge.templates import ApprovalStatus, Template
from starter.api.auth import AUTH_ERRORS, NEEDS_READ, NOT_FOUND, STEP_ERRORS, AdminCaller
from starter.api.deps import RegistryDep
from starter.api.routes.review import Rejection, registry_answers

router = APIRouter(tags=["registry"], responses={**AUTH_ERRORS, **NOT_FOUND})

LanguageQuery = Annotated[
    str, Query(max_length=35, description="The variant's language, e.g. zh; empty for the default.")
]


class TemplateIn(BaseModel):
    body: str = Field(min_length=1, max_length=1000, description="The text, with ${name} placeholders.")
    category: Category
    provider_codes: dict[ProviderName, str] = Field(
        default_factory=dict, description="The code each provider's console gave this text."
    )
    signature: str | None = Field(
        default=None, max_length=100, description="Sign with this, not the route's."
    )


class TemplatePublic(BaseModel):
    code: str
    language: str
    body: str
    category: Category
    provider_codes: dict[str, str]
    signature: str | None
    status: ApprovalStatus
    reason: str | None
    version: int
    variables: list[str]
    created_at: datetime
    updated_at: datetime
    approved_at: datetime | None
    changed_by: str | None = None
    """Who made the last change: an API key's name."""

    @classmethod
    def of(cls, row: SmsTemplate) -> TemplatePublic:
        return cls(
            **row.model_dump(exclude={"status", "category"}),
            category=Category(row.category),
            status=ApprovalStatus(row.status),
            variables=Template(row.code, row.body, Category(row.category)).ordered_variables,
        )


class TemplatePut(BaseModel):
    template: TemplatePublic
    created: bool
    changed: bool
    review_reset: ApprovalStatus | None = None
    """The state the edit took it out of; it is a draft now and is not sent until approved."""
    notice: str | None = None


@router.get("/v1/templates", response_model=list[TemplatePublic], dependencies=NEEDS_READ)
async def list_templates(registry: RegistryDep, code: str | None = None) -> list[TemplatePublic]:
    """Every template variant, by code and language, with its review state."""
    return [TemplatePublic.of(row) for row in await registry.templates(code)]


@router.get("/v1/templates/{code}", response_model=TemplatePublic, dependencies=NEEDS_READ)
async def get_template(code: str, registry: RegistryDep, language: LanguageQuery = "") -> TemplatePublic:
    """One variant of a template: the default, or the one in ``language``."""
    with registry_answers():
        return TemplatePublic.of(await registry.template(code, language))


@router.put("/v1/templates/{code}", response_model=TemplatePut)
async def put_template(
    code: str, body: TemplateIn, registry: RegistryDep, caller: AdminCaller, language: LanguageQuery = ""
) -> TemplatePut:
    """Create a variant as a draft, or edit one. An edit of an approved or pending variant makes it
    a draft again (``review_reset``): it is not sent until it is approved again."""
    with registry_answers():
        change = await registry.put_template(
            code,
            language=language,
            body=body.body,
            category=body.category,
            provider_codes={str(provider): code for provider, code in body.provider_codes.items()},
            signature=body.signature,
            by=caller.name,
        )
    notice = None
    if change.review_reset is not None:
        notice = (
            f"the template was {change.review_reset.value}; the edit made it a draft, and it is not "
            "sent until it is approved again"
        )
    return TemplatePut(
        template=TemplatePublic.of(change.template),
        created=change.created,
        changed=change.changed,
        review_reset=change.review_reset,
        notice=notice,
    )


@router.post("/v1/templates/{code}:submit", responses=STEP_ERRORS, response_model=TemplatePublic)
async def submit_template(
    code: str, registry: RegistryDep, caller: AdminCaller, language: LanguageQuery = ""
) -> TemplatePublic:
    """Draft -> pending; refused when the opt-out wording breaks its locale's rule."""
    with registry_answers():
        return TemplatePublic.of(await registry.submit_template(code, language, by=caller.name))


@router.post("/v1/templates/{code}:approve", responses=STEP_ERRORS, response_model=TemplatePublic)
async def approve_template(
    code: str, registry: RegistryDep, caller: AdminCaller, language: LanguageQuery = ""
) -> TemplatePublic:
    """Draft or pending -> approved, when the wording meets its locale's rule; then it is sent."""
    with registry_answers():
        return TemplatePublic.of(await registry.approve_template(code, language, by=caller.name))


@router.post("/v1/templates/{code}:reject", responses=STEP_ERRORS, response_model=TemplatePublic)
async def reject_template(
    code: str,
    rejection: Annotated[Rejection, Body()],
    registry: RegistryDep,
    caller: AdminCaller,
    language: LanguageQuery = "",
) -> TemplatePublic:
    """Draft, pending or approved -> rejected, with the reason; it is no longer sent."""
    with registry_answers():
        row = await registry.reject_template(code, language, reason=rejection.reason, by=caller.name)
        return TemplatePublic.of(row)
