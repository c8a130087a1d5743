"""A real headless Chromium for the dashboard's tests: Debian's ``chromium`` (``.ci/run`` installs
it), driven by Playwright's Python API over its own driver, with no browser download.

Where no Chromium can run, ``chromium()`` skips the test and says why. Screenshots go under
``test-artifacts/`` (``NUDGE_TEST_ARTIFACTS`` to move it), never into git.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    configured = os.environ.get("NUDGE_TEST_CHROMIUM")
    if configured:
        return configured
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def artifacts(*parts: str) -> Path:
    """Where a test's screenshots go (made if needed)."""
    root = Path(
        os.environ.get("NUDGE_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")
    )
    folder = root.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.asynccontextmanager
async def chromium(base_url: str) -> AsyncIterator[tuple[Any, list[str]]]:
    """A page of a fresh headless Chromium, and the list of every request it tried to make to
    another host than ``base_url``'s (refused: the dashboard must work offline)."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium: install Debian's chromium package (.ci/run does) to run the browser tests")
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:  # pragma: no cover - a dev dependency
        pytest.skip(f"playwright is not installed ({exc})")
    own = urlsplit(base_url).netloc
    elsewhere: list[str] = []
    async with async_playwright() as driver:
        try:
            browser = await driver.chromium.launch(
                executable_path=executable, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
            )
        except Exception as exc:  # noqa: BLE001 - any launch failure means: no browser here
            pytest.skip(f"Chromium at {executable} does not start here: {str(exc).splitlines()[0]}")
        context = await browser.new_context(base_url=base_url, viewport={"width": 1400, "height": 1000})

        async def only_ours(route: Any) -> None:
            if urlsplit(route.request.url).netloc == own:
                await route.continue_()
            else:
                elsewhere.append(route.request.url)
                await route.abort()

        await context.route("**/*", only_ours)
        page = await context.new_page()
        try:
            yield page, elsewhere
        finally:
            await context.close()
            await browser.close()
