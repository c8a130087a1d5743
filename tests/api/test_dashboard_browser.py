"""The dashboard in a real headless Chromium: log in, click through every page, check what it
shows against the API's JSON, resume a pause with the button, and save a screenshot of each page
(under test-artifacts/dashboard/). No request may leave the gateway: the page must work offline."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from typing import Any

import pytest

from nudge.apikeys import Scope
from nudge.store import Assignment, Click, Experiment, utcnow
from starter.api.services.keys import ApiKeys
from tests.api.conftest import Gateway
from tests.api.test_gateway import add_message
from tests.browser import artifacts, chromium

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def _seed(gateway: Gateway) -> str:
    """An onboarding A/B test (b clicks more), a cart journey, a blocked message and a pause;
    answers one customer's id."""
    rng = random.Random(12)
    now = utcnow()
    rows: list[Any] = [
        Experiment(name="welcome_copy", journey="onboarding", variants=["a", "b"], weights={"a": 50, "b": 50})
    ]
    for i in range(120):
        customer, variant = f"web-{i}", "ab"[i % 2]
        rows.append(
            Assignment(
                experiment="welcome_copy", variant=variant, customer_id=customer,
                workflow_id=f"journey:onboarding:{customer}", journey="onboarding", reason="weights",
                at=now - timedelta(minutes=30),
            )
        )  # fmt: skip
        clicked = rng.random() < (0.1 if variant == "a" else 0.5)
        status = "undelivered" if i % 17 == 0 else "delivered"
        message = await add_message(
            gateway, customer, journey="onboarding", step="send:welcome", template=f"welcome_{variant}",
            variant=f"welcome_copy:{variant}", workflow_id=f"journey:onboarding:{customer}",
            route="aliyun-cn", status=status, clicked=clicked, created_at=now - timedelta(minutes=29),
        )  # fmt: skip
        if clicked:
            rows.append(
                Click(code=uuid.uuid4().hex[:8], message_id=message.id, at=now - timedelta(minutes=20))
            )
    for i in range(10):
        await add_message(
            gateway, f"cart-{i}", status="delivered" if i else "blocked", reason=None if i else "no_consent"
        )
    async with gateway.sessions() as session:
        session.add_all(rows)
        await session.commit()
    paused = await gateway.http.post(
        "/v1/pauses", json={"scope": "template", "value": "cart_reminder", "reason": "complaints over 0.5 %"}
    )
    assert paused.status_code == 201, paused.text
    return "web-1"


async def _texts(page: Any, selector: str) -> list[str]:
    return [text.strip() for text in await page.locator(selector).all_inner_texts()]


async def test_click_through_the_dashboard(gateway: Gateway) -> None:
    customer = await _seed(gateway)
    key, _ = await ApiKeys(gateway.sessions, cache_ttl=timedelta(0)).create("ops", [Scope.ADMIN], by="test")
    shots = artifacts("dashboard")
    api = gateway.http

    async with chromium(str(gateway.http.base_url)) as (page, elsewhere):
        await page.goto("/dashboard/funnel")
        assert "/dashboard/login" in page.url
        await page.fill("#key", key)
        await page.click("#login")
        await page.wait_for_url("**/dashboard/funnel")

        # The funnel: every row as the API has it, and the chart drawn by the vendored Chart.js.
        funnel = (await api.get("/v1/reports/funnel", params={"group_by": ["journey", "variant"]})).json()
        await page.wait_for_selector("canvas[data-drawn=true]")
        for row in funnel:
            group = " / ".join(value or "(none)" for value in row["group"].values())
            cells = page.locator(f'#funnel tr[data-group="{group}"]')
            for field in ("sent", "delivered", "undelivered", "clicked", "blocked"):
                assert (await cells.locator(f'[data-field="{field}"]').inner_text()) == str(row[field]), (
                    group,
                    field,
                )
        await page.screenshot(path=shots / "funnel.png", full_page=True)

        # The overview's totals and charts.
        await page.click("#nav-overview")
        await page.wait_for_selector("canvas[data-chart=chart-rates][data-drawn=true]")
        total = (await api.get("/v1/reports/funnel")).json()[0]
        assert await page.locator('#totals [data-field="sent"]').inner_text() == str(total["sent"])
        assert await page.locator("#paused-count .figure").inner_text() == "1"
        await page.screenshot(path=shots / "overview.png", full_page=True)

        # Experiments: the verdict in the API's words.
        report = (await api.get("/v1/experiments/welcome_copy")).json()
        await page.click("#nav-experiments")
        assert (
            await page.locator('tr[data-experiment="welcome_copy"] .summary').inner_text()
            == report["verdict"]["summary"]
        )
        await page.click('tr[data-experiment="welcome_copy"] a')
        await page.wait_for_selector("#verdict")
        assert await page.locator("#verdict").inner_text() == report["verdict"]["summary"]
        for figures in report["verdict"]["variants"]:
            row = page.locator(f'#variants tr[data-variant="{figures["variant"]}"]')
            assert await row.locator('[data-field="exposures"]').inner_text() == str(figures["exposures"])
            assert await row.locator('[data-field="successes"]').inner_text() == str(figures["successes"])
        await page.screenshot(path=shots / "experiment.png", full_page=True)

        # Pauses: the button resumes the scope, as the API then says.
        await page.click("#nav-pauses")
        await page.screenshot(path=shots / "pauses.png", full_page=True)
        await page.click('tr[data-value="cart_reminder"] button.resume')
        await page.wait_for_selector("#message")
        assert "resumed template cart_reminder" in await page.locator("#message").inner_text()
        assert (await api.get("/v1/pauses")).json() == []

        # A customer's timeline, each message linked to its journey in the Temporal UI.
        await page.click("#nav-customers")
        await page.fill("#customer_id", customer)
        await page.click("#show")
        await page.wait_for_selector("#timeline")
        timeline = (await api.get(f"/v1/customers/{customer}/timeline")).json()
        assert await _texts(page, "#timeline li .title") == [entry["title"] for entry in timeline]
        link = await page.locator('#timeline li[data-kind="message"] a.temporal').first.get_attribute("href")
        assert link == f"http://localhost:8233/namespaces/default/workflows/journey%3Aonboarding%3A{customer}"
        await page.screenshot(path=shots / "customer.png", full_page=True)

        # Message search by status.
        await page.click("#nav-messages")
        await page.select_option("#status", "undelivered")
        await page.click("#search")
        await page.wait_for_selector("#messages tr[data-status]")
        found = (await api.get("/v1/messages", params={"status": "undelivered"})).json()["messages"]
        shown = await page.locator("#messages tr[data-message]").evaluate_all(
            "rows => rows.map(r => r.dataset.message)"
        )
        assert shown == [m["id"] for m in found] and len(found) == 8
        await page.screenshot(path=shots / "messages.png", full_page=True)

        await page.click("#logout")
        await page.wait_for_url("**/dashboard/login")
        await page.goto("/dashboard")
        assert "/dashboard/login" in page.url

    assert elsewhere == []
