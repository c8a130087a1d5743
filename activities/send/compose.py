"""What the message says, where it may go and what it costs: the template's variant for the
customer, tracked links, the signature per route, billed segments, and the provider's request.

No I/O except the registry's template lookup; the gate decides, the ledger writes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.compliance.registry import Registry
from activities.providers.base import OutboundSms
from activities.routing import NoRoute, Recipient, Route, Router
from nudge.contracts import error_type
from nudge.errors import TemplateError
from nudge.models import Category, MessageStatus, SendRequest
from nudge.segments import count_billed_segments
from nudge.store import Customer, Link, Message, RowBuilder, new_link_code, new_message_id, utcnow
from nudge.templates import Template

from .outcome import NO_PHONE, NO_ROUTE

_URL = re.compile(r"^https?://\S+$")
SIGN_NAME_PROVIDERS = frozenset({"aliyun", "tencent"})
"""Providers that sign with a name, where a template's own signature applies (Twilio's and the
simulator API's sender is a number)."""
# A broadcast builds a hundred rows a batch: built as the ORM loads rows (``RowBuilder``), each
# costs a tenth of what the models' constructors do.
new_message = RowBuilder(Message)
new_link = RowBuilder(Link)


class Composer:
    """Renders and prices messages for the gate: built once per worker."""

    def __init__(
        self,
        *,
        registry: Registry,
        router: Router,
        link_base_url: str,
        status_callbacks: Mapping[str, str] | None = None,
    ) -> None:
        self._registry = registry
        self._router = router
        self._link_base_url = link_base_url.rstrip("/")
        self._callbacks = dict(status_callbacks or {})

    async def template(self, code: str, customer: Customer | None) -> Template:
        """The registry's variant of ``code`` for the customer's language; unknown is permanent."""
        try:
            return await self._registry.get(code, language(customer))
        except TemplateError as exc:
            raise ApplicationError(str(exc), type=error_type(TemplateError), non_retryable=True) from exc

    def message(
        self, request: SendRequest, template: Template, customer: Customer | None
    ) -> tuple[Message, list[Link]]:
        """A new ``pending`` row for ``request``, rendered and priced on its best route (or
        already ``blocked`` when there is no phone or no route), with its tracked links."""
        # Every value is given at once, the defaults' too: a model's default factories and each
        # later assignment cost more than the rest of a broadcast's row.
        now = utcnow()
        row: dict[str, Any] = {
            "id": new_message_id(),
            "idempotency_key": request.idempotency_key,
            "workflow_id": request.workflow_id,
            "journey": request.journey,
            "step": request.step,
            "customer_id": request.customer_id,
            "template": request.template,
            "variant": request.variant,
            # The category the caps count it under: a payment template in a marketing journey is
            # marketing, as the opt-out check treats it.
            "category": (Category.MARKETING if is_marketing(request, template) else template.category).value,
            "notify_receipt": request.notify_receipt,
            "created_at": now,
            "updated_at": now,
        }
        if customer is None or not customer.phone:
            return new_message(**row, status=MessageStatus.BLOCKED, reason=NO_PHONE), []
        params, links = self._track_links(row["id"], request.params, now)
        try:
            body = template.render(params)
        except TemplateError as exc:
            raise ApplicationError(str(exc), type=error_type(TemplateError), non_retryable=True) from exc
        row |= {
            "to": customer.phone,
            "body": body,
            "params": {k: v for k, v in params.items() if k in template.variables},
        }
        to = recipient(customer.phone, customer)
        try:
            route = self._router.candidates(to, template, request.category, forced=request.route)[0]
        except NoRoute as exc:
            return new_message(**row, status=MessageStatus.BLOCKED, reason=f"{NO_ROUTE}{exc}"), links
        sign = signature(request, template, route, to.language)
        return new_message(**row, **priced(row["body"], row["to"], route, sign)), links

    def blocked(self, request: SendRequest, template: Template, reason: str) -> Message:
        """A row for ``request`` that is refused before it is rendered (no number, no text)."""
        message, _ = self.message(request, template, None)
        message.reason = reason
        return message

    def _track_links(
        self, message_id: str, params: dict[str, Any], now: datetime
    ) -> tuple[dict[str, Any], list[Link]]:
        """Replace every URL parameter with a tracked short link."""
        rendered: dict[str, Any] = {}
        links: list[Link] = []
        for name, value in params.items():
            if isinstance(value, str) and _URL.match(value):
                link = new_link(code=new_link_code(), message_id=message_id, target_url=value, created_at=now)
                links.append(link)
                rendered[name] = f"{self._link_base_url}/l/{link.code}"
            else:
                rendered[name] = value
        return rendered, links

    def outbound(self, message: Message, route: Route, template: Template) -> OutboundSms:
        """The provider's request for ``message`` on ``route``."""
        params: dict[str, Any] = dict(message.params or {})
        return OutboundSms(
            message_id=message.id,
            to=message.to or "",
            body=message.body,
            signature=message.signature or route.config.signature,
            template_code=template.provider_codes.get(route.config.provider),
            template_params={
                name: str(params[name]) for name in template.ordered_variables if name in params
            },
            status_callback=self._callbacks.get(route.config.provider),
            batch_ref=message.batch_ref,
        )


def is_marketing(request: SendRequest, template: Template) -> bool:
    """Marketing when the template or the journey is: a payment template inside a marketing
    journey still respects an opt-out."""
    return Category.MARKETING in (request.category, template.category)


def language(customer: Customer | None) -> str | None:
    value = ((customer.attributes if customer else None) or {}).get("language")
    return value if isinstance(value, str) else None


def recipient(to: str, customer: Customer | None) -> Recipient:
    attributes: dict[str, Any] = (customer.attributes if customer else None) or {}
    return Recipient.of(to, tier=attributes.get("tier"), language=language(customer))


def signature(request: SendRequest, template: Template, route: Route, language: str | None) -> str:
    """The journey's override, else the template's own signature where the provider signs with
    a name, else the route's signature for the customer's language."""
    if request.signature:
        return request.signature
    if template.signature and route.config.provider in SIGN_NAME_PROVIDERS:
        return template.signature
    return route.config.signature_for(language)


def price(message: Message, route: Route, signature: str) -> None:
    """Put the message on ``route``: its signature, billed segments and cost."""
    for name, value in priced(message.body, message.to or "", route, signature).items():
        setattr(message, name, value)


def priced(body: str, to: str, route: Route, signature: str) -> dict[str, Any]:
    """A message's columns on ``route``: its signature, billed segments and cost."""
    segments = count_billed_segments(body, provider=route.config.provider, to=to, signature=signature)
    return {
        "route": route.name,
        "signature": signature,
        "segments": segments,
        "cost": round(segments * route.config.cost_per_segment, 6),
        "currency": route.config.currency,
    }
