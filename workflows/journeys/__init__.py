"""The journey library: one module per journey, each found here without a central list.

A new journey is a module in this package (its class, and the templates it brings in
``templates``) and its test: nothing else to edit. ``JOURNEYS`` is every ``Journey`` subclass with
a ``trigger`` defined in these modules: the transactional ones first, then in module-name order.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

from temporalio import workflow

from workflows.journey import Journey

with workflow.unsafe.imports_passed_through():
    from nudge.models import Category
    from nudge.templates import Template, builtin_templates


def discover() -> tuple[type[Journey], ...]:
    """Import every module of this package and return the journeys they define."""
    found: list[type[Journey]] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Journey)
            and value.__module__ == module.__name__
            and "trigger" in value.__dict__
        ]
    # Transactional journeys first: the gateway starts and signals in this order, and a payment
    # confirmation must not wait behind a marketing journey's signal for the same event.
    return tuple(sorted(found, key=lambda journey: journey.category is not Category.TRANSACTIONAL))


# The sandbox re-imports a journey's module for each run; it needs that class only, not the list.
JOURNEYS: tuple[type[Journey], ...] = () if workflow.unsafe.in_sandbox() else discover()
"""The journeys the worker runs and the gateway routes events to."""


def seeded_templates(journeys: Sequence[type[Journey]] | None = None) -> list[Template]:
    """What a fresh registry starts with: the built-in templates, then every journey's own.

    Raises:
        ValueError: two of them share a code and language (a journey reusing a built-in code, or
            two journeys the same one): the registry holds one variant per code and language.
    """
    chosen = JOURNEYS if journeys is None else journeys
    owners = {(t.code, t.language): "the built-in templates" for t in builtin_templates()}
    for journey in chosen:
        for template in journey.templates:
            variant = (template.code, template.language)
            if variant in owners:
                language = f" ({template.language})" if template.language else ""
                raise ValueError(
                    f"{journey.__name__} brings template {template.code!r}{language}, which "
                    f"{owners[variant]} already define: give it a code of its own"
                )
            owners[variant] = journey.__name__
    return [*builtin_templates(), *(template for journey in chosen for template in journey.templates)]
