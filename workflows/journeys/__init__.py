"""The journey library: one module per journey, each found here without a central list.

A new journey is a module in this package (its class, and the templates it brings in
``templates``) and its test: nothing else to edit. ``JOURNEYS`` is every ``Journey`` subclass with
a ``trigger`` defined in these modules, in module-name order.
"""

from __future__ import annotations

import importlib
import pkgutil

from temporalio import workflow

from workflows.journey import Journey

with workflow.unsafe.imports_passed_through():
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
    return tuple(found)


# The sandbox re-imports a journey's module for each run; it needs that class only, not the list.
JOURNEYS: tuple[type[Journey], ...] = () if workflow.unsafe.in_sandbox() else discover()
"""The journeys the worker runs and the gateway routes events to."""


def seeded_templates(journeys: tuple[type[Journey], ...] | None = None) -> list[Template]:
    """What a fresh registry starts with: the built-in templates, then every journey's own."""
    return [
        *builtin_templates(),
        *(t for journey in (JOURNEYS if journeys is None else journeys) for t in journey.templates),
    ]
