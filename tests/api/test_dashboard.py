"""The dashboard over HTTP: who may see it (a signed session for a read or admin key), what it
refuses (forged or expired cookies, revoked keys, a missing form token, a read key acting), the
figures it shows (the API's own), and that every asset it needs is its own."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from nudge.apikeys import Scope
from starter.api.services.keys import ApiKeys
from tests.api.conftest import Gateway
from tests.api.test_gateway import add_message


@pytest.fixture
async def browser(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no API key: only what the dashboard's cookie gives it."""
    async with httpx.AsyncClient(base_url=gateway.http.base_url, trust_env=False) as client:
        yield client


async def _key(gateway: Gateway, *scopes: Scope) -> str:
    key, _ = await ApiKeys(gateway.sessions, cache_ttl=timedelta(0)).create(
        f"dash-{'-'.join(scopes)}", scopes, by="test"
    )
    return key


async def _login(browser: httpx.AsyncClient, key: str, next: str = "/dashboard") -> httpx.Response:
    return await browser.post("/dashboard/login", data={"key": key, "next": next})


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no form token"
    return found.group(1)


async def test_a_page_sends_a_stranger_to_the_login_page_and_back(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    response = await browser.get("/dashboard/funnel?group_by=route")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login?next=/dashboard/funnel%3Fgroup_by%3Droute"

    login = await _login(browser, await _key(gateway, Scope.READ), next="/dashboard/funnel?group_by=route")

    assert login.status_code == 303
    assert login.headers["location"] == "/dashboard/funnel?group_by=route"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    assert "nk_" not in cookie  # the key itself never goes into the cookie
    assert (await browser.get("/dashboard/funnel")).status_code == 200


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example", "/dashboard\\..\\x", "/v1/keys"]
)
async def test_login_goes_back_only_to_a_dashboard_page(
    gateway: Gateway, browser: httpx.AsyncClient, target: str
) -> None:
    login = await _login(browser, await _key(gateway, Scope.READ), next=target)
    assert login.headers["location"] == "/dashboard"


async def test_login_refuses_unknown_revoked_and_events_only_keys(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    unknown = await _login(browser, "nk_deadbeef_notarealsecret")
    assert unknown.status_code == 401
    assert "unknown or revoked" in unknown.text
    events = await _login(browser, await _key(gateway, Scope.EVENTS))
    assert events.status_code == 401
    assert "no read or admin scope" in events.text
    assert "set-cookie" not in events.headers
    assert (await browser.get("/dashboard")).status_code == 303


async def test_a_forged_expired_or_revoked_session_is_refused(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    key = await _key(gateway, Scope.READ)
    await _login(browser, key)
    cookie = browser.cookies["nudge_session"]
    prefix, expires, signature = cookie.split(".")
    assert (await browser.get("/dashboard")).status_code == 200

    for forged in (
        f"{prefix}.{int(expires) + 3600}.{signature}",  # a longer life, same signature
        f"{prefix}.{expires}.{signature[:-2]}AA",
        f"{prefix}.1.{signature}",
        "garbage",
    ):
        browser.cookies.clear()
        browser.cookies.set("nudge_session", forged, path="/dashboard")
        assert (await browser.get("/dashboard")).status_code == 303, forged

    browser.cookies.clear()
    browser.cookies.set("nudge_session", cookie, path="/dashboard")
    revoked = await gateway.http.delete(f"/v1/keys/{prefix}")
    assert revoked.status_code == 200
    assert (await browser.get("/dashboard")).status_code == 303


async def test_resume_needs_an_admin_key_and_the_forms_token(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    paused = await gateway.http.post(
        "/v1/pauses", json={"scope": "template", "value": "cart_reminder", "reason": "too many complaints"}
    )
    assert paused.status_code == 201, paused.text
    form = {"scope": "template", "value": "cart_reminder"}

    await _login(browser, await _key(gateway, Scope.READ))
    page = await browser.get("/dashboard/pauses")
    assert "cart_reminder" in page.text and "disabled" in page.text
    refused = await browser.post("/dashboard/pauses/resume", data={**form, "csrf": _csrf(page.text)})
    assert refused.status_code == 403

    browser.cookies.clear()
    await _login(browser, await _key(gateway, Scope.ADMIN))
    page = await browser.get("/dashboard/pauses")
    assert (
        await browser.post("/dashboard/pauses/resume", data={**form, "csrf": "x" * 43})
    ).status_code == 403
    assert len((await gateway.http.get("/v1/pauses")).json()) == 1

    done = await browser.post("/dashboard/pauses/resume", data={**form, "csrf": _csrf(page.text)})

    assert done.status_code == 303
    assert (await gateway.http.get("/v1/pauses")).json() == []
    history = (await gateway.http.get("/v1/pauses/history")).json()
    assert history[0]["action"] == "resumed" and history[0]["by"] == "dash-admin (dashboard)"
    again = await browser.post("/dashboard/pauses/resume", data={**form, "csrf": _csrf(page.text)})
    assert "not paused" in (await browser.get(again.headers["location"])).text


def _cells(page: str, table: str) -> dict[str, dict[str, str]]:
    """``{group: {field: text}}`` from a figures table of the page."""
    body = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    rows = {}
    for group, cells in re.findall(r'<tr data-group="([^"]*)">(.*?)</tr>', body, re.S):
        rows[group] = dict(re.findall(r'data-field="([^"]+)"[^>]*>([^<]*)<', cells))
    return rows


async def test_the_funnel_page_shows_the_apis_figures(gateway: Gateway, browser: httpx.AsyncClient) -> None:
    for variant, status, clicked in [
        ("welcome_copy:a", "delivered", False),
        ("welcome_copy:a", "undelivered", False),
        ("welcome_copy:b", "delivered", True),
        ("welcome_copy:b", "delivered", True),
        ("welcome_copy:b", "blocked", False),
    ]:
        await add_message(
            gateway, "funnel-page", journey="onboarding", variant=variant, status=status, clicked=clicked
        )
    api = (await gateway.http.get("/v1/reports/funnel", params={"group_by": ["journey", "variant"]})).json()
    await _login(browser, await _key(gateway, Scope.READ))

    page = await browser.get("/dashboard/funnel", params={"group_by": ["journey", "variant"]})

    assert page.status_code == 200
    cells = _cells(page.text, "funnel")
    assert set(cells) == {"onboarding / welcome_copy:a", "onboarding / welcome_copy:b"}
    for row in api:
        shown = cells[" / ".join(row["group"].values())]
        for field in ("messages", "sent", "delivered", "undelivered", "clicked", "blocked", "converted"):
            assert shown[field] == str(row[field]), field
        assert shown["rates.click"] == f"{100 * row['rates']['click']:.1f} %"
    assert cells["onboarding / welcome_copy:b"]["clicked"] == "2"  # and the test's own count
    chart = json.loads(
        re.search(r'<script type="application/json" id="chart-funnel">(.*?)</script>', page.text, re.S)[1]
    )
    assert chart["labels"] == [" / ".join(row["group"].values()) for row in api]
    assert {d["label"]: d["data"] for d in chart["datasets"]} == {
        stage: [row[stage] for row in api] for stage in ("sent", "delivered", "clicked", "converted")
    }
    bad = await browser.get("/dashboard/funnel", params={"since": "yesterday"})
    assert bad.status_code == 400 and "since: not a time" in bad.text


async def test_every_page_is_self_contained_and_locked_down(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    await add_message(gateway, "assets", status="delivered")
    await _login(browser, await _key(gateway, Scope.ADMIN))
    for path in (
        "/dashboard",
        "/dashboard/funnel",
        "/dashboard/experiments",
        "/dashboard/pauses",
        "/dashboard/customers?customer_id=assets",
        "/dashboard/messages",
    ):
        page = await browser.get(path)
        assert page.status_code == 200, path
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        # Nothing from another host, except the Temporal UI that a message links to.
        assert [s for s in sources if "//" in s and not s.startswith("http://localhost:8233/")] == [], path
        for asset in re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', page.text):
            served = await browser.get(asset)
            assert served.status_code == 200, asset
    chart = await browser.get("/dashboard/static/chart.umd.min.js")
    assert chart.text.startswith("/*!\n * Chart.js v4")
    assert "javascript" in chart.headers["content-type"]


async def test_a_login_posted_from_another_site_is_refused(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    """Another site's form must not log this browser in with that site's key (login CSRF)."""
    key = await _key(gateway, Scope.READ)
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = await browser.post("/dashboard/login", data={"key": key}, headers=headers)
        assert refused.status_code == 403, headers
        assert "set-cookie" not in refused.headers
    own = await browser.post(
        "/dashboard/login", data={"key": key}, headers={"Origin": str(browser.base_url).rstrip("/")}
    )
    assert own.status_code == 303


async def test_a_read_key_sees_no_customers_timeline(gateway: Gateway, browser: httpx.AsyncClient) -> None:
    """A timeline holds a customer's event properties, replies and consent trail: admin only."""
    await add_message(gateway, "private-1", status="delivered")
    await _login(browser, await _key(gateway, Scope.READ))
    page = await browser.get("/dashboard/customers", params={"customer_id": "private-1"})
    assert page.status_code == 403 and "needs an admin key" in page.text
    assert 'id="timeline"' not in page.text
    browser.cookies.clear()
    await _login(browser, await _key(gateway, Scope.ADMIN))
    page = await browser.get("/dashboard/customers", params={"customer_id": "private-1"})
    assert page.status_code == 200 and 'id="timeline"' in page.text


async def test_a_cookie_with_odd_digits_is_refused_not_an_error(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    raw = "nudge_session=abcdef01.²³.x".encode()  # superscripts: str.isdigit says yes, int says no
    assert (await browser.get("/dashboard", headers={"Cookie": raw})).status_code == 303
