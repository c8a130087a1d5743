"""Every exception Nudge defines is a ``NudgeError``, so that a caller can catch Nudge's own
errors in one clause; the only exceptions are the runtime's private control flow and the carrier
simulator's (the fake provider's side of the wire)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from nudge.errors import NudgeError

PACKAGES = ("nudge", "workflows", "activities", "starter")
ALLOWED = {"workflows.lifecycle._JourneyExit"}
"""Raised by ``Journey.exit`` to unwind ``steps`` and caught by the run loop; never escapes."""


def modules() -> list[str]:
    names = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        names.append(package)
        names += [m.name for m in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")]
    # Alembic's environment runs inside a migration (it reads Alembic's context), never on import.
    return [n for n in names if not n.endswith("__main__") and n != "nudge.store.migrations.env"]


@pytest.mark.parametrize("module", modules())
def test_every_exception_class_is_under_the_one_root(module: str) -> None:
    loaded = importlib.import_module(module)
    stray = [
        f"{module}.{name}"
        for name, value in vars(loaded).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module
        and not issubclass(value, NudgeError)
        and f"{module}.{name}" not in ALLOWED
    ]
    assert stray == []
