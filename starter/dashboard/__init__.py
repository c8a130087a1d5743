"""The dashboard at ``/dashboard``: funnels, experiments, rates over time, pauses, customers'
timelines and message search, for a ``read`` or ``admin`` key.

Server-rendered pages (Jinja2) over the same services as the API; the charts are Chart.js, vendored
in ``static/`` (``make vendor-chartjs``), so the dashboard works with no network at all.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from starter.dashboard import actions, pages
from starter.dashboard.web import HERE


def mount(app: FastAPI) -> None:
    """Add the dashboard's pages and its static assets to the gateway."""
    app.include_router(actions.router)
    app.include_router(pages.router)
    app.mount("/dashboard/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")
