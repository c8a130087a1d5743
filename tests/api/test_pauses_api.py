"""/v1/pauses and the complaint-rate breaker behind the provider webhooks: STOP replies and
complaint receipt codes open it, and the alert reaches a real webhook on loopback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from sqlmodel import select

from nudge.settings import Settings
from nudge.store import Complaint, Message
from tests.api.conftest import Gateway
from tests.api.test_gateway import add_message
from tests.api.test_webhooks import TOKEN, TWILIO_SID, post_twilio
from tests.inbox import Inbox
from tests.servers import serve


@pytest.fixture
async def alerts() -> AsyncIterator[Inbox]:
    """The operator's alert webhook: a real HTTP receiver on a free loopback port."""
    inbox = Inbox()
    async with serve(inbox.app) as url:
        inbox.url = f"{url}/hooks/nudge"
        yield inbox


@pytest.fixture
def gateway_settings(gateway_settings: Settings, alerts: Inbox) -> Settings:
    """A breaker that opens at more than 1 complaint in 4 sends, alerting the receiver."""
    return gateway_settings.model_copy(
        update={
            "complaint_min_volume": 4,
            "complaint_threshold": 0.25,
            "alert_webhook_url": SecretStr(alerts.url),
        }
    )


async def sent_reminders(gateway: Gateway, count: int) -> list[Message]:
    """``count`` delivered cart reminders on aliyun-cn, to customers whose phones are on file."""
    messages = []
    for _ in range(count):
        customer = f"cust-{uuid.uuid4().hex[:10]}"
        phone = f"+86137{uuid.uuid4().int % 10**8:08d}"
        r = await gateway.http.put(f"/v1/customers/{customer}", json={"id": customer, "phone": phone})
        assert r.status_code == 200, r.text
        messages.append(
            await add_message(
                gateway, customer, to=phone, status="delivered", route="aliyun-cn", signature="Nudge"
            )
        )
    return messages


async def stop(gateway: Gateway, message: Message, *, sequence_id: int) -> None:
    """The customer answers 退订 (Aliyun SmsUp)."""
    reply = {"phone_number": (message.to or "")[3:], "content": "退订", "sequence_id": sequence_id}
    response = await gateway.http.post(f"/v1/webhooks/aliyun/{TOKEN}/up", json=[reply])
    assert response.status_code == 200, response.text


async def test_pauses_api_pauses_lists_resumes_and_keeps_the_history(gateway: Gateway) -> None:
    """POST pauses (201, then 409 while paused), GET lists it, DELETE resumes (then 404), and the
    history has both, newest first, with who (the key's name, then the person named) and why."""
    body = {"scope": "route", "value": "aliyun-cn", "reason": "carrier asked", "by": "ana"}
    created = await gateway.http.post("/v1/pauses", json=body)
    again = await gateway.http.post("/v1/pauses", json=body)
    listed = await gateway.http.get("/v1/pauses")
    resumed = await gateway.http.delete("/v1/pauses/route/aliyun-cn", params={"reason": "ok now", "by": "bo"})
    missing = await gateway.http.delete("/v1/pauses/route/aliyun-cn")
    history = await gateway.http.get("/v1/pauses/history")

    assert created.status_code == 201
    assert (created.json()["source"], created.json()["created_by"], created.json()["sent"]) == (
        "manual",
        "tests (ana)",
        None,
    )
    assert again.status_code == 409 and "already paused" in again.json()["detail"]
    assert [(p["scope"], p["value"], p["reason"]) for p in listed.json()] == [
        ("route", "aliyun-cn", "carrier asked")
    ]
    assert resumed.status_code == 200 and resumed.json()["reason"] == "carrier asked"
    assert missing.status_code == 404 and "not paused" in missing.json()["detail"]
    assert [(e["action"], e["by"], e["reason"]) for e in history.json()] == [
        ("resumed", "tests (bo)", "ok now"),
        ("paused", "tests (ana)", "carrier asked"),
    ]
    assert (await gateway.http.get("/v1/pauses")).json() == []


async def test_pauses_api_refuses_a_bad_scope_or_an_unknown_name(gateway: Gateway) -> None:
    """A scope that is not template, signature, journey or route gets 422, as does a template,
    journey or route that does not exist (a typo would pause nothing); any signature is fine."""
    responses = {
        "scope": await gateway.http.post(
            "/v1/pauses", json={"scope": "carrier", "value": "x", "reason": "r"}
        ),
        "delete scope": await gateway.http.delete("/v1/pauses/carrier/x"),
        "template": await gateway.http.post(
            "/v1/pauses", json={"scope": "template", "value": "cart_remnder", "reason": "r"}
        ),
        "journey": await gateway.http.post(
            "/v1/pauses", json={"scope": "journey", "value": "nope", "reason": "r"}
        ),
        "route": await gateway.http.post(
            "/v1/pauses", json={"scope": "route", "value": "nope", "reason": "r"}
        ),
    }
    assert {name: r.status_code for name, r in responses.items()} == dict.fromkeys(responses, 422)
    reasons = {name: r.json()["detail"][0]["msg"] for name, r in responses.items()}
    assert "cart_remnder" in reasons["template"]
    assert "cart_abandonment" in reasons["journey"]
    assert "aliyun-cn" in reasons["route"]
    signature = await gateway.http.post(
        "/v1/pauses", json={"scope": "signature", "value": "Any", "reason": "r"}
    )
    assert signature.status_code == 201


async def test_stop_replies_open_the_breaker_and_the_alert_webhook_receives_it(
    gateway: Gateway, alerts: Inbox
) -> None:
    """4 reminders sent; one STOP (25%) pauses nothing, and its redelivery counts once; a second
    STOP (50%) pauses the template, journey, signature and route, and the webhook gets the alert."""
    messages = await sent_reminders(gateway, 4)
    await stop(gateway, messages[0], sequence_id=1)
    await stop(gateway, messages[0], sequence_id=1)
    assert (await gateway.http.get("/v1/pauses")).json() == []

    await stop(gateway, messages[1], sequence_id=2)

    pauses = (await gateway.http.get("/v1/pauses")).json()
    assert sorted(p["scope"] for p in pauses) == ["journey", "route", "signature", "template"]
    template = next(p for p in pauses if p["scope"] == "template")
    assert (
        template["value"],
        template["source"],
        template["complaints"],
        template["sent"],
        template["rate"],
    ) == (
        "cart_reminder",
        "auto",
        2,
        4,
        0.5,
    )
    received = await alerts.wait_for(4)
    alert = next(a for a in received if a["scope"] == "template")
    assert (alert["alert"], alert["value"], alert["complaints"], alert["sent"], alert["threshold"]) == (
        "sends_paused",
        "cart_reminder",
        2,
        4,
        0.25,
    )
    assert alert["resume"] == "nudge resume --template cart_reminder"


async def test_complaint_receipt_code_counts_and_other_codes_do_not(
    gateway: Gateway, customer_id: str
) -> None:
    """A Twilio receipt with 30007 (carrier filtering) is a complaint of its message; 30008 is not."""
    filtered, failed = [
        await add_message(
            gateway, customer_id, provider="twilio", provider_message_id=f"SM{uuid.uuid4().hex}"
        )
        for _ in range(2)
    ]
    for message, code in ((filtered, "30007"), (failed, "30008")):
        form = {
            "MessageSid": message.provider_message_id or "",
            "MessageStatus": "undelivered",
            "ErrorCode": code,
            "AccountSid": TWILIO_SID,
        }
        assert (await post_twilio(gateway, "/v1/webhooks/twilio/status", form)).status_code == 204
    async with gateway.sessions() as session:
        complaints = (await session.exec(select(Complaint))).all()
    assert [(c.message_id, c.kind, c.code) for c in complaints] == [(filtered.id, "provider_code", "30007")]


async def test_pause_refuses_transactional_scopes_and_knows_registry_templates(gateway: Gateway) -> None:
    """Pausing a transactional template or journey would hold nothing: 422 says why; a template
    added through the registry can be paused."""
    r = await gateway.http.post(
        "/v1/pauses", json={"scope": "template", "value": "payment_success", "reason": "x"}
    )
    assert r.status_code == 422 and "transactional" in r.text
    r = await gateway.http.post(
        "/v1/pauses", json={"scope": "journey", "value": "payment_success", "reason": "x"}
    )
    assert r.status_code == 422 and "transactional" in r.text
    body = {"body": "Spring sale ${url} Reply STOP to opt out", "category": "marketing"}
    assert (await gateway.http.put("/v1/templates/spring_sale", json=body)).status_code in (200, 201)
    r = await gateway.http.post(
        "/v1/pauses", json={"scope": "template", "value": "spring_sale", "reason": "x"}
    )
    assert r.status_code == 201, r.text
