"""API keys and scopes on the real gateway over loopback: who may do what, and what is recorded."""

from __future__ import annotations

import hashlib
import re
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select
from structlog.testing import capture_logs

from nudge.apikeys import Scope
from nudge.store import ApiKey
from starter.api import create_app
from starter.api.services.keys import ApiKeys
from tests.api.conftest import Gateway

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/l/{code}"),
    ("HEAD", "/l/{code}"),
    ("POST", "/v1/webhooks/aliyun/{token}/report"),
    ("POST", "/v1/webhooks/aliyun/{token}/up"),
    ("POST", "/v1/webhooks/tencent/{token}/report"),
    ("POST", "/v1/webhooks/tencent/{token}/reply"),
    ("POST", "/v1/webhooks/twilio/status"),
    ("POST", "/v1/webhooks/twilio/inbound"),
    ("POST", "/codec/t/{token}/decode"),
    ("POST", "/codec/t/{token}/encode"),
}
"""What stays open, and why: providers cannot carry our keys (their pushes are checked by signature or
callback token), customers click short links, load balancers probe health, and the Temporal UI
calls the codec server from the browser (behind the codec token in the path)."""

SCOPE_OF = {
    ("POST", "/v1/events"): "events",
    ("POST", "/v1/events:batch"): "events",
    ("POST", "/v1/track"): "events",
    ("POST", "/v1/page"): "events",
    ("POST", "/v1/identify"): "events",
    ("POST", "/v1/batch"): "events",
    ("PUT", "/v1/customers/{customer_id}"): "events",
    ("POST", "/v1/customers:batch"): "events",
    ("POST", "/v1/customer-imports"): "events",
    ("GET", "/v1/customer-imports/{import_id}"): "events",
    ("POST", "/v1/customer-imports/{import_id}/rows"): "events",
    ("POST", "/v1/customer-imports/{import_id}:commit"): "events",
    ("POST", "/v1/customer-imports/{import_id}:abort"): "events",
    ("GET", "/v1/customers/{customer_id}"): "admin",
    ("POST", "/v1/customers/{customer_id}:forget"): "admin",
    ("GET", "/v1/customers/{customer_id}/consent"): "admin",
    ("POST", "/v1/customers/{customer_id}/consent"): "admin",
    ("POST", "/v1/customers/{customer_id}/consent:withdraw"): "admin",
    ("POST", "/v1/audiences"): "admin",
    ("GET", "/v1/audiences"): "read",
    ("GET", "/v1/audiences/{name}"): "read",
    ("GET", "/v1/audiences/{name}/count"): "read",
    ("GET", "/v1/audiences/{name}/sample"): "admin",
    ("PUT", "/v1/audiences/{name}/members"): "admin",
    ("DELETE", "/v1/audiences/{name}"): "admin",
    ("POST", "/v1/broadcasts"): "admin",
    ("GET", "/v1/broadcasts"): "read",
    ("GET", "/v1/broadcasts/{broadcast_id}"): "read",
    ("POST", "/v1/broadcasts/{broadcast_id}:pause"): "admin",
    ("POST", "/v1/broadcasts/{broadcast_id}:resume"): "admin",
    ("POST", "/v1/broadcasts/{broadcast_id}:cancel"): "admin",
    ("GET", "/v1/pauses"): "read",
    ("POST", "/v1/pauses"): "admin",
    ("DELETE", "/v1/pauses/{scope}/{value}"): "admin",
    ("GET", "/v1/pauses/history"): "read",
    ("GET", "/v1/reports/funnel"): "read",
    ("GET", "/v1/reports/rates"): "read",
    ("GET", "/v1/messages"): "read",
    ("GET", "/v1/customers/{customer_id}/timeline"): "admin",
    ("GET", "/v1/experiments"): "read",
    ("GET", "/metrics"): "read",
    ("GET", "/v1/experiments/{name}"): "read",
    ("POST", "/v1/experiments/{name}:conclude"): "admin",
    ("GET", "/v1/templates"): "read",
    ("GET", "/v1/templates/{code}"): "read",
    ("PUT", "/v1/templates/{code}"): "admin",
    ("POST", "/v1/templates/{code}:submit"): "admin",
    ("POST", "/v1/templates/{code}:approve"): "admin",
    ("POST", "/v1/templates/{code}:reject"): "admin",
    ("GET", "/v1/signatures"): "read",
    ("GET", "/v1/signatures/{name}"): "read",
    ("PUT", "/v1/signatures/{name}"): "admin",
    ("POST", "/v1/signatures/{name}:submit"): "admin",
    ("POST", "/v1/signatures/{name}:approve"): "admin",
    ("POST", "/v1/signatures/{name}:reject"): "admin",
    ("GET", "/v1/keys"): "admin",
    ("POST", "/v1/keys"): "admin",
    ("DELETE", "/v1/keys/{prefix}"): "admin",
    ("POST", "/codec/decode"): "admin",
    ("POST", "/codec/encode"): "admin",
}
"""The scope each route needs, written out by hand: the oracle for what the code declares."""


def operations() -> dict[tuple[str, str], dict[str, Any]]:
    """Every operation the gateway serves, from its OpenAPI schema (the simulator's receipt route,
    left out of it, is a webhook like the providers')."""
    schema = create_app().openapi()
    return {
        (method.upper(), path): op for path, item in schema["paths"].items() for method, op in item.items()
    }


def concrete(path: str) -> str:
    """A request path for a route path: each parameter filled with a plain value."""
    return re.sub(r"\{[^}]+\}", "x1", path).replace("/v1/pauses/x1/x1", "/v1/pauses/route/x1")


async def key_with(gateway: Gateway, *scopes: str, name: str = "svc") -> str:
    created = await gateway.http.post("/v1/keys", json={"name": name, "scopes": list(scopes)})
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


def as_key(gateway: Gateway, key: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=gateway.http.base_url, trust_env=False, headers=headers)


def test_every_route_is_public_by_intent_or_declares_its_scope() -> None:
    """The routes are exactly the public ones and the scoped ones above, each scoped one requiring
    the scope listed: a new route must be listed, so none goes out unauthenticated by accident."""
    served = operations()
    assert set(served) - PUBLIC == set(SCOPE_OF)
    declared = {op: served[op]["security"] for op in SCOPE_OF}
    assert declared == {op: [{"apiKey": [scope]}] for op, scope in SCOPE_OF.items()}


async def test_anonymous_calls_are_refused_401_on_every_scoped_route(gateway: Gateway) -> None:
    """No key, a malformed one and an unknown one: 401 with WWW-Authenticate on every scoped route,
    before the body is even looked at."""
    unknown = "nk_00000000_" + "A" * 43
    for key in (None, "not-a-key", unknown):
        async with as_key(gateway, key) as http:
            for method, path in sorted(SCOPE_OF):
                response = await http.request(method, concrete(path), json={})
                assert response.status_code == 401, (key, method, path, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer"), (method, path)
                assert "API key" in response.json()["detail"]


async def test_anonymous_template_change_is_refused_and_changes_nothing(gateway: Gateway) -> None:
    """The attack from the issue: without a key, rewriting payment_success to carry another link and
    approving it are refused (401), and the template is as it was."""
    before = (await gateway.http.get("/v1/templates/payment_success")).json()
    evil = {"body": "Pay again at https://evil.example/${order_id}", "category": "transactional"}
    async with as_key(gateway, None) as anonymous:
        put = await anonymous.put("/v1/templates/payment_success", json=evil)
        approve = await anonymous.post("/v1/templates/payment_success:approve")
    assert (put.status_code, approve.status_code) == (401, 401)
    after = (await gateway.http.get("/v1/templates/payment_success")).json()
    assert after == before


async def test_a_key_without_the_scope_gets_403_and_changes_nothing(gateway: Gateway) -> None:
    """An events key may post events and upsert customers, and is refused (403, insufficient_scope)
    on the admin routes and reading profiles; a read key reads templates, and may not post events."""
    events_key = await key_with(gateway, "events", name="checkout-service")
    read_key = await key_with(gateway, "read", name="dashboard")
    before = (await gateway.http.get("/v1/templates/payment_success")).json()
    customer = {"id": "auth-c1", "name": "Ana", "phone": "+8613800138000"}
    async with as_key(gateway, events_key) as service, as_key(gateway, read_key) as reader:
        upserted = await service.put("/v1/customers/auth-c1", json=customer)
        event = {"event_id": "auth-e1", "customer_id": "auth-c1", "name": "page_viewed"}
        posted = await service.post("/v1/events", json=event)
        template = await service.put(
            "/v1/templates/payment_success", json={"body": "x", "category": "marketing"}
        )
        profile = await service.get("/v1/customers/auth-c1")
        withdraw = await service.post("/v1/customers/auth-c1/consent:withdraw", json={"source": "attacker"})
        pause = await service.post("/v1/pauses", json={"scope": "route", "value": "aliyun-cn", "reason": "x"})
        listed = await reader.get("/v1/templates")
        read_event = await reader.post("/v1/events", json=event)
        read_profile = await reader.get("/v1/customers/auth-c1")
    assert (upserted.status_code, posted.status_code) == (200, 202)
    for refused in (template, profile, withdraw, pause):
        assert refused.status_code == 403, refused.text
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
        assert 'scope="admin"' in refused.headers["www-authenticate"]
        assert "checkout-service" in refused.json()["detail"]
    assert listed.status_code == 200
    assert (read_event.status_code, read_profile.status_code) == (403, 403)
    assert 'scope="events"' in read_event.headers["www-authenticate"]
    assert (await gateway.http.get("/v1/templates/payment_success")).json() == before
    assert (await gateway.http.get("/v1/customers/auth-c1/consent")).json()["history"] == []
    assert (await gateway.http.get("/v1/pauses")).json() == []


async def test_refusals_are_logged_with_prefix_and_client_never_the_key(gateway: Gateway) -> None:
    """A wrong key and a key lacking the scope are logged as api_key_refused with the key's prefix and
    the client's address; the key itself appears in no log line."""
    events_key = await key_with(gateway, "events")
    unknown = "nk_0badc0de_" + "B" * 43
    with capture_logs() as logs:
        async with as_key(gateway, unknown) as wrong, as_key(gateway, events_key) as service:
            await wrong.get("/v1/templates")
            await service.get("/v1/templates")
    refused = [entry for entry in logs if entry["event"] == "api_key_refused"]
    assert [(entry["key_prefix"], entry["client"]) for entry in refused] == [
        ("0badc0de", "127.0.0.1"),
        (events_key.split("_")[1], "127.0.0.1"),
    ]
    assert unknown not in repr(logs) and events_key not in repr(logs)


async def test_keys_api_shows_a_key_once_stores_its_digest_and_revoke_takes_effect_at_once(
    gateway: Gateway,
) -> None:
    """POST /v1/keys answers the key once; the store holds its SHA-256 only; the list shows prefix,
    name and scopes but neither key nor digest; after DELETE the key gets 401."""
    created = await gateway.http.post("/v1/keys", json={"name": "crm-sync", "scopes": ["events", "read"]})
    assert created.status_code == 201
    key, shown = created.json()["key"], created.json()["api_key"]
    assert re.fullmatch(r"nk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", key)
    assert (shown["name"], shown["scopes"], shown["created_by"]) == ("crm-sync", ["events", "read"], "tests")
    async with gateway.sessions() as session:
        row = (await session.exec(select(ApiKey).where(ApiKey.prefix == shown["prefix"]))).one()
    assert row.digest == hashlib.sha256(key.encode()).hexdigest()
    assert key not in repr(row.model_dump())
    listed = (await gateway.http.get("/v1/keys")).json()
    assert any(k["prefix"] == shown["prefix"] for k in listed)
    assert key not in repr(listed) and row.digest not in repr(listed)

    async with as_key(gateway, key) as holder:
        assert (await holder.get("/v1/templates")).status_code == 200
        revoked = await gateway.http.delete(f"/v1/keys/nk_{shown['prefix']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_by"] == "tests"
        after = await holder.get("/v1/templates")
    assert after.status_code == 401
    assert all(k["prefix"] != shown["prefix"] for k in (await gateway.http.get("/v1/keys")).json())
    assert (await gateway.http.delete("/v1/keys/nk_ffffffff")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [{"name": "x", "scopes": []}, {"name": "x", "scopes": ["root"]}, {"name": "", "scopes": ["read"]}],
)
async def test_keys_api_refuses_a_key_without_scope_or_name(gateway: Gateway, body: dict[str, Any]) -> None:
    """A key with no scope, an unknown scope or no name is refused with 422."""
    assert (await gateway.http.post("/v1/keys", json=body)).status_code == 422


async def test_admin_changes_record_the_keys_name(gateway: Gateway) -> None:
    """A template put and approve, a signature reject and a pause made with the key `ops-console`
    each record `ops-console` as who acted."""
    ops = await key_with(gateway, "admin", name="ops-console")
    body = {"body": "Your code is ${code}", "category": "transactional"}
    async with as_key(gateway, ops) as http:
        put = await http.put("/v1/templates/auth_code", json=body)
        approved = await http.post("/v1/templates/auth_code:approve")
        await http.put("/v1/signatures/AuthShop")
        rejected = await http.post("/v1/signatures/AuthShop:reject", json={"reason": "no licence"})
        paused = await http.post("/v1/pauses", json={"scope": "route", "value": "aliyun-cn", "reason": "x"})
        await http.delete("/v1/pauses/route/aliyun-cn")
    assert put.json()["template"]["changed_by"] == "ops-console"
    assert approved.json()["changed_by"] == "ops-console"
    assert rejected.json()["changed_by"] == "ops-console"
    assert paused.json()["created_by"] == "ops-console"
    history = (await gateway.http.get("/v1/pauses/history")).json()
    assert [e["by"] for e in history[:2]] == ["ops-console", "ops-console"]


def test_openapi_declares_the_bearer_scheme_and_the_refusals() -> None:
    """The schema has the apiKey bearer scheme (so /docs can authorise), and every scoped operation
    requires it and declares its 401 and 403 with a body; public operations require nothing."""
    schema = create_app().openapi()
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "nk_<prefix>_<secret>",
        "description": "An API key from `nudge keys create`, as `Authorization: Bearer nk_...`.",
    }
    for (method, path), operation in operations().items():
        if (method, path) in PUBLIC:
            assert "security" not in operation, path
            continue
        for status in ("401", "403"):
            body = operation["responses"][status]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/Problem"}, (method, path, status)


async def test_a_key_revoked_elsewhere_is_refused_once_the_cache_lapses(gateway: Gateway) -> None:
    """A gateway trusts its check of a key for the cache's time; revoked through another process (the
    CLI on the database), the key is refused by a checker whose cache has lapsed."""
    key = await key_with(gateway, "read")
    cached = ApiKeys(gateway.sessions, cache_ttl=timedelta(hours=1))
    fresh = ApiKeys(gateway.sessions, cache_ttl=timedelta(0))
    assert await cached.authenticate(key) is not None
    await ApiKeys(gateway.sessions, cache_ttl=timedelta(0)).revoke(key.split("_")[1], by="cli:ops")
    assert await cached.authenticate(key) is not None  # within its hour: trusted as checked
    assert await fresh.authenticate(key) is None
    assert await fresh.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


async def test_scope_is_checked_by_the_key_not_claimed_by_the_caller(gateway: Gateway) -> None:
    """A key made for events, presented with a forged admin claim in another header, is still an
    events key: only the stored scopes count."""
    events_key = await key_with(gateway, "events")
    async with as_key(gateway, events_key) as http:
        response = await http.get("/v1/keys", headers={"X-Scopes": "admin", "X-Nudge-Scope": Scope.ADMIN})
    assert response.status_code == 403


async def test_local_admin_key_is_made_once_owner_only_and_remade_when_stale(
    gateway: Gateway, tmp_path: Path
) -> None:
    """``nudge up``'s bootstrap: the first start writes a live admin key readable by its owner only;
    the next start keeps it; a file whose key was revoked gets a new one."""
    keys = ApiKeys(gateway.sessions, cache_ttl=timedelta(0))
    path = tmp_path / "state" / "admin.key"
    assert await keys.ensure_local_admin(path) is True
    first = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    caller = await keys.authenticate(first)
    assert caller is not None and (caller.name, caller.scopes) == ("local-admin", ("admin",))
    assert await keys.ensure_local_admin(path) is False
    assert path.read_text().strip() == first

    await keys.revoke(caller.prefix, by="test")
    assert await keys.ensure_local_admin(path) is True
    second = path.read_text().strip()
    assert second != first and await keys.authenticate(second) is not None


HIDDEN = {
    ("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("POST", "/v1/webhooks/simulator/status"),
}
"""Routes the schema leaves out, public on purpose: the schema and its pages (no data), and the
local simulator's receipts (a webhook, closed unless a simulator route is configured)."""
DASHBOARD = {
    ("GET", "/dashboard"),
    ("GET", "/dashboard/funnel"),
    ("GET", "/dashboard/messages"),
    ("GET", "/dashboard/customers"),
    ("GET", "/dashboard/experiments"),
    ("GET", "/dashboard/experiments/{name}"),
    ("POST", "/dashboard/experiments/{name}/conclude"),
    ("GET", "/dashboard/pauses"),
    ("POST", "/dashboard/pauses/resume"),
    ("POST", "/dashboard/logout"),
}
"""The dashboard's pages (HTML, out of the schema): behind its session cookie, which only a read or
admin key gets (tests/api/test_dashboard.py); the login page itself is open."""
DASHBOARD_LOGIN = {("GET", "/dashboard/login"), ("POST", "/dashboard/login")}


async def test_every_dashboard_page_sends_a_stranger_to_the_login_page(gateway: Gateway) -> None:
    async with as_key(gateway, None) as http:
        for method, path in sorted(DASHBOARD):
            response = await http.request(
                method, concrete(path), data={"csrf": "x", "scope": "route", "value": "x"}
            )
            assert response.status_code == 303, (method, path, response.text)
            assert response.headers["location"].startswith("/dashboard/login?next="), (method, path)


def test_routes_left_out_of_the_schema_are_only_the_known_public_ones() -> None:
    """A route hidden from the schema escapes the check above; so every hidden route must be one of
    these, and a new hidden one fails here until it is given a scope or listed as public."""
    from fastapi.routing import APIRoute
    from starlette.routing import Route

    def flat(routes: list[Any]) -> list[Any]:
        found = []
        for route in routes:
            inner = getattr(route, "original_router", None)  # FastAPI keeps included routers whole
            found += flat(inner.routes) if inner is not None else [route]
        return found

    hidden = {
        (method, route.path)
        for route in flat(create_app().routes)
        if isinstance(route, (APIRoute, Route)) and not getattr(route, "include_in_schema", True)
        for method in route.methods or ()
    }
    assert hidden == HIDDEN | DASHBOARD | DASHBOARD_LOGIN
