"""The layers import downwards only: kernel (``nudge``) <- ``workflows`` and ``activities`` <-
``starter`` and ``worker.py``; and workflow code reaches no module that does I/O.

Read from the sources (``ast``), so a violation anywhere, even in a branch never run, fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("nudge", "workflows", "activities", "starter", "simulator")
MAY_IMPORT = {
    "nudge": {"nudge"},
    "workflows": {"nudge", "workflows"},
    "activities": {"nudge", "activities"},
    "starter": {"nudge", "workflows", "activities", "starter", "simulator", "worker"},
    "simulator": {"nudge", "simulator"},
}
"""First-party packages each layer may import (the simulator stands in for the carriers)."""
IO_MODULES = {"httpx", "aiohttp", "sqlalchemy", "sqlmodel", "structlog", "psycopg", "aiosqlite", "fastapi"}
KERNEL_WITH_IO = {
    "nudge.store",
    "nudge.temporal",
    "nudge.logging",
    "nudge.binaries",
    "nudge.settings",
    "nudge.client",
}
"""Kernel modules that do I/O (or read the environment): workflow code must not import them."""


def imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def modules(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    """E.g. no kernel module imports ``activities``, and no activity imports ``starter``."""
    first_party = set(LAYERS) | {"worker"}
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(layer)
        for name in imports(path)
        if name.split(".")[0] in first_party - MAY_IMPORT[layer]
    ]
    assert wrong == []


def test_workflow_code_reaches_no_io_module() -> None:
    """Workflows import no HTTP, database or logging library, and no kernel module that does I/O,
    directly or through the kernel modules they import."""
    seen: set[str] = set()
    wrong: list[str] = []

    def visit(module: str, via: str) -> None:
        if module in seen:
            return
        seen.add(module)
        path = ROOT / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = ROOT / module.replace(".", "/") / "__init__.py"
        if not path.exists():
            return
        for name in imports(path):
            top = name.split(".")[0]
            if top in IO_MODULES or name in KERNEL_WITH_IO:
                wrong.append(f"{via} -> {module} imports {name}")
            elif top in ("nudge", "workflows"):
                visit(name, f"{via} -> {module}")

    for path in modules("workflows"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        visit(module, module)
    assert wrong == []


def test_worker_imports_no_starter_module() -> None:
    """The worker is started by the stack, never the other way round."""
    assert [name for name in imports(ROOT / "worker.py") if name.startswith("starter")] == []
