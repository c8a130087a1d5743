"""Personal data sealed in Temporal history, and the codec server that opens it for the UI."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from nudge.models import Profile
from nudge.settings import Settings
from tests.api.conftest import Gateway
from tests.polling import wait_until

NAME = "Zhang Weiqiang"
PHONE = "+8613912345678"


@pytest.fixture
def gateway_settings(gateway_settings: Settings) -> Settings:
    # The welcome goes a second after sign-up, so that the journey reads the profile at once.
    overrides = {"onboarding": {"welcome_delay": "PT1S"}}
    return gateway_settings.model_copy(
        update={
            "codec_token": SecretStr("ui-token-0123456789-abcdefghijklmnop"),
            "journey_overrides": overrides,
        }
    )


def sealed_payloads(node: Any) -> list[dict[str, Any]]:
    """Every payload in a history's JSON whose encoding is binary/encrypted."""
    found = []
    if isinstance(node, dict):
        encoding = (
            node.get("metadata", {}).get("encoding") if isinstance(node.get("metadata"), dict) else None
        )
        if encoding == base64.b64encode(b"binary/encrypted").decode():
            found.append(node)
        for value in node.values():
            found += sealed_payloads(value)
    elif isinstance(node, list):
        for value in node:
            found += sealed_payloads(value)
    return found


async def welcome_history(gateway: Gateway) -> str:
    """An onboarding journey run to its welcome for a customer with a name and phone (it reads the
    profile, and sends with the name); its raw history as the server stores it, in JSON."""
    customer = f"pii-{uuid.uuid4().hex[:8]}"
    gateway.carrier.profiles[customer] = Profile(customer_id=customer, name=NAME, phone=PHONE)
    body = {
        "event_id": uuid.uuid4().hex,
        "customer_id": customer,
        "name": "signed_up",
    }
    response = await gateway.http.post("/v1/events", json=body)
    assert response.status_code == 202, response.text
    [workflow_id] = response.json()["workflow_ids"]
    await wait_until(lambda: bool(gateway.carrier.requests), what="the welcome was sent", timeout=30)
    handle = gateway.client.get_workflow_handle(workflow_id)

    async def recorded() -> bool:
        # The profile read and the send are local activities: their results reach history with
        # the workflow task that follows them, a moment after the carrier saw the send.
        types = set()
        for e in (await handle.fetch_history()).events:
            details = e.marker_recorded_event_attributes.details
            if "data" in details:  # the SDK core's own note of a local activity: plain JSON
                types.add(json.loads(details["data"].payloads[0].data).get("activity_type"))
        return {"get_profile", "send_message"} <= types

    await wait_until(recorded, what="the profile read and the send are in history", timeout=30)
    await handle.terminate("test read its history")
    return (await handle.fetch_history()).to_json()


async def test_raw_history_holds_no_name_or_phone(gateway: Gateway) -> None:
    """The history the server stores (what the UI shows without the codec) has the profile's name
    and phone nowhere in plain text, not even as base64 of JSON; its payloads are sealed."""
    raw = await welcome_history(gateway)
    history = json.loads(raw)
    assert sealed_payloads(history), "no sealed payload found: the codec is not on"
    every_payload = [base64.b64decode(p.get("data", "")) for p in _all_payloads(history, everything=True)]
    plain_everywhere = raw + "".join(d.decode("latin-1") for d in every_payload)
    for secret in (NAME, "Weiqiang", PHONE, "13912345678"):
        assert secret not in plain_everywhere, secret
    # Every payload is sealed, except search attributes (the server indexes them; never personal
    # data) and what the SDK core writes itself into its markers: a patch's {"id": ...}, and a local
    # activity's bookkeeping (seq, attempt, type); the local activity's result is sealed.
    for node in _all_payloads(history):
        assert node["metadata"]["encoding"] == base64.b64encode(b"binary/encrypted").decode(), node


def _all_payloads(node: Any, *, everything: bool = False) -> list[dict[str, Any]]:
    """Every payload in a history's JSON; unless ``everything``, not those the codec never sees."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("metadata"), dict) and "encoding" in node["metadata"]:
            found.append(node)
        if not everything and node.get("markerName") == "core_patch":
            return found
        if not everything and node.get("markerName") == "core_local_activity":
            node = {**node, "details": {k: v for k, v in node["details"].items() if k != "data"}}
        for key, value in node.items():
            if everything or key != "searchAttributes":
                found += _all_payloads(value, everything=everything)
    elif isinstance(node, list):
        for value in node:
            found += _all_payloads(value, everything=everything)
    return found


async def test_codec_server_opens_the_history_for_admins_and_the_ui_token(gateway: Gateway) -> None:
    """POST /codec/decode with an admin key, and the UI's /codec/t/<token>/decode, open the same
    sealed payloads: the profile's name is readable; a wrong token is 404 and no key 401."""
    payloads = sealed_payloads(json.loads(await welcome_history(gateway)))
    admin = await gateway.http.post("/codec/decode", json={"payloads": payloads})
    assert admin.status_code == 200, admin.text
    opened = [base64.b64decode(p["data"]).decode() for p in admin.json()["payloads"]]
    assert any(NAME in text and PHONE in text for text in opened)
    assert all(
        p["metadata"]["encoding"] != base64.b64encode(b"binary/encrypted").decode()
        for p in admin.json()["payloads"]
    )

    async with httpx.AsyncClient(base_url=gateway.http.base_url, trust_env=False) as browser:
        ui = await browser.post(
            "/codec/t/ui-token-0123456789-abcdefghijklmnop/decode", json={"payloads": payloads}
        )
        wrong = await browser.post(
            "/codec/t/ui-token-0123456789-abcdefghijklmnoX/decode", json={"payloads": payloads}
        )
        anonymous = await browser.post("/codec/decode", json={"payloads": payloads})
    assert ui.status_code == 200 and ui.json() == admin.json()
    assert (wrong.status_code, anonymous.status_code) == (404, 401)


async def test_codec_server_encode_seals_what_decode_opens(gateway: Gateway) -> None:
    """encode seals a plain payload (no plain text left) with the current key; decode gives it back."""
    plain = {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(b'"Ana"').decode(),
    }
    sealed = (await gateway.http.post("/codec/encode", json={"payloads": [plain]})).json()["payloads"]
    assert base64.b64decode(sealed[0]["metadata"]["encryption-key-id"]) == b"test-1"
    assert b"Ana" not in base64.b64decode(sealed[0]["data"])
    back = (await gateway.http.post("/codec/decode", json={"payloads": sealed})).json()["payloads"]
    assert back == [plain]


async def test_codec_server_answers_the_ui_origin_only(gateway: Gateway) -> None:
    """The browser's preflight from the Temporal UI's origin is allowed; another origin gets no
    CORS grant, so its page cannot read an answer."""
    async with httpx.AsyncClient(base_url=gateway.http.base_url, trust_env=False) as browser:
        headers = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        }
        ui = await browser.options(
            "/codec/t/ui-token-0123456789-abcdefghijklmnop/decode",
            headers={"Origin": "http://localhost:8233", **headers},
        )
        other = await browser.options(
            "/codec/t/ui-token-0123456789-abcdefghijklmnop/decode",
            headers={"Origin": "https://evil.example", **headers},
        )
    assert ui.status_code == 200 and ui.headers["access-control-allow-origin"] == "http://localhost:8233"
    assert "access-control-allow-origin" not in other.headers


async def test_codec_server_refuses_malformed_payloads_and_unknown_keys(gateway: Gateway) -> None:
    """Not Temporal's payload JSON is 400; a payload sealed with a key this gateway lacks is 422 with
    the key id, not a 500."""
    bad = await gateway.http.post("/codec/decode", json={"payloads": [{"metadata": "not a map"}]})
    assert bad.status_code == 400
    foreign = {
        "metadata": {
            "encoding": base64.b64encode(b"binary/encrypted").decode(),
            "encryption-key-id": base64.b64encode(b"gone-key").decode(),
        },
        "data": base64.b64encode(b"\0" * 40).decode(),
    }
    missing = await gateway.http.post("/codec/decode", json={"payloads": [foreign]})
    assert missing.status_code == 422 and "'gone-key'" in missing.json()["detail"][0]["msg"]
    plain = {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(b"1").decode(),
    }
    [sealed] = (await gateway.http.post("/codec/encode", json={"payloads": [plain]})).json()["payloads"]
    data = base64.b64decode(sealed["data"])
    for broken in (data[:-1] + bytes([data[-1] ^ 1]), data[:5]):  # altered; truncated
        corrupt = {**sealed, "data": base64.b64encode(broken).decode()}
        answer = await gateway.http.post("/codec/decode", json={"payloads": [corrupt]})
        assert answer.status_code == 422 and "does not open" in answer.json()["detail"][0]["msg"], answer.text


async def test_cors_is_granted_on_the_codec_server_only(gateway: Gateway) -> None:
    """Even the UI's origin gets no CORS grant on the rest of the API: only /codec/ answers browsers."""
    async with httpx.AsyncClient(base_url=gateway.http.base_url, trust_env=False) as browser:
        headers = {"Origin": "http://localhost:8233", "Access-Control-Request-Method": "POST"}
        preflight = await browser.options("/v1/events", headers=headers)
    assert "access-control-allow-origin" not in preflight.headers
