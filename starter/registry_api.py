"""The registry over HTTP: templates and signatures, and their review.

    GET  /v1/templates[?code=]                      every variant
    GET  /v1/templates/{code}?language=             one variant (the default without ``language``)
    PUT  /v1/templates/{code}?language=             create, or edit (an edit of the text is a new draft)
    POST /v1/templates/{code}:submit|:approve?language=
    POST /v1/templates/{code}:reject?language=      {"reason": "..."}
    GET  /v1/signatures, GET|PUT /v1/signatures/{name}, POST /v1/signatures/{name}:submit|:approve|:reject

Answers: 404 for an unknown entry, 409 for a step its state does not allow, 422 for bad input
(placeholder syntax, category, opt-out wording on submit or approve), each with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from activities.compliance.registry import Registry
from nudge.errors import ApprovalRefused, InvalidInput, NotFound
from nudge.models import Category
from nudge.routes import ProviderName
from nudge.store import SmsSignature, SmsTemplate
from nudge.templates import ApprovalStatus, Template

router = APIRouter(tags=["registry"])

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


class SignaturePublic(BaseModel):
    name: str
    status: ApprovalStatus
    reason: str | None
    created_at: datetime
    updated_at: datetime
    approved_at: datetime | None

    @classmethod
    def of(cls, row: SmsSignature) -> SignaturePublic:
        return cls(**row.model_dump(exclude={"status"}), status=ApprovalStatus(row.status))


class SignaturePut(BaseModel):
    signature: SignaturePublic
    created: bool


class Rejection(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="Why, as the provider or reviewer said.")


@contextmanager
def _answers() -> Iterator[None]:
    """The registry's refusals as HTTP answers, with its reason as the detail."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    except ApprovalRefused as exc:
        raise HTTPException(409 if exc.conflict else 422, detail=str(exc)) from exc
    except InvalidInput as exc:
        raise HTTPException(422, detail=str(exc)) from exc


async def _registry(request: Request) -> Registry:
    """The gateway's registry (``Services.registry``, built in its lifespan)."""
    registry: Registry = request.app.state.services.registry
    return registry


RegistryDep = Annotated[Registry, Depends(_registry)]


@router.get("/v1/templates", response_model=list[TemplatePublic])
async def list_templates(registry: RegistryDep, code: str | None = None) -> list[TemplatePublic]:
    """Every template variant, by code and language, with its review state."""
    return [TemplatePublic.of(row) for row in await registry.templates(code)]


@router.get("/v1/templates/{code}", response_model=TemplatePublic)
async def get_template(code: str, registry: RegistryDep, language: LanguageQuery = "") -> TemplatePublic:
    """One variant of a template: the default, or the one in ``language``."""
    with _answers():
        return TemplatePublic.of(await registry.template(code, language))


@router.put("/v1/templates/{code}", response_model=TemplatePut)
async def put_template(
    code: str, body: TemplateIn, registry: RegistryDep, language: LanguageQuery = ""
) -> TemplatePut:
    """Create a variant as a draft, or edit one. An edit of an approved or pending variant makes it
    a draft again (``review_reset``): it is not sent until it is approved again."""
    with _answers():
        change = await registry.put_template(
            code,
            language=language,
            body=body.body,
            category=body.category,
            provider_codes={str(provider): code for provider, code in body.provider_codes.items()},
            signature=body.signature,
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


@router.post("/v1/templates/{code}:submit", response_model=TemplatePublic)
async def submit_template(code: str, registry: RegistryDep, language: LanguageQuery = "") -> TemplatePublic:
    """Draft -> pending; refused when the opt-out wording breaks its locale's rule."""
    with _answers():
        return TemplatePublic.of(await registry.submit_template(code, language))


@router.post("/v1/templates/{code}:approve", response_model=TemplatePublic)
async def approve_template(code: str, registry: RegistryDep, language: LanguageQuery = "") -> TemplatePublic:
    """Draft or pending -> approved, when the wording meets its locale's rule; then it is sent."""
    with _answers():
        return TemplatePublic.of(await registry.approve_template(code, language))


@router.post("/v1/templates/{code}:reject", response_model=TemplatePublic)
async def reject_template(
    code: str, rejection: Annotated[Rejection, Body()], registry: RegistryDep, language: LanguageQuery = ""
) -> TemplatePublic:
    """Draft, pending or approved -> rejected, with the reason; it is no longer sent."""
    with _answers():
        row = await registry.reject_template(code, language, reason=rejection.reason)
        return TemplatePublic.of(row)


@router.get("/v1/signatures", response_model=list[SignaturePublic])
async def list_signatures(registry: RegistryDep) -> list[SignaturePublic]:
    """Every signature and sender, with its review state."""
    return [SignaturePublic.of(row) for row in await registry.signatures()]


@router.get("/v1/signatures/{name}", response_model=SignaturePublic)
async def get_signature(name: str, registry: RegistryDep) -> SignaturePublic:
    with _answers():
        return SignaturePublic.of(await registry.signature(name))


@router.put("/v1/signatures/{name}", response_model=SignaturePut)
async def put_signature(name: str, registry: RegistryDep) -> SignaturePut:
    """Add a signature as a draft (a rejected one becomes a draft again); others are unchanged."""
    with _answers():
        row, created = await registry.put_signature(name)
    return SignaturePut(signature=SignaturePublic.of(row), created=created)


@router.post("/v1/signatures/{name}:submit", response_model=SignaturePublic)
async def submit_signature(name: str, registry: RegistryDep) -> SignaturePublic:
    with _answers():
        return SignaturePublic.of(await registry.submit_signature(name))


@router.post("/v1/signatures/{name}:approve", response_model=SignaturePublic)
async def approve_signature(name: str, registry: RegistryDep) -> SignaturePublic:
    """Draft or pending -> approved: routes with this signature carry messages again."""
    with _answers():
        return SignaturePublic.of(await registry.approve_signature(name))


@router.post("/v1/signatures/{name}:reject", response_model=SignaturePublic)
async def reject_signature(
    name: str, rejection: Annotated[Rejection, Body()], registry: RegistryDep
) -> SignaturePublic:
    """Rejected (or withdrawn): routes that sign with it are skipped."""
    with _answers():
        return SignaturePublic.of(await registry.reject_signature(name, reason=rejection.reason))
