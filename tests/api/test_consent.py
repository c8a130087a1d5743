"""Consent through the gateway: the API, consent that comes with a profile, and replies."""

from __future__ import annotations

import uuid

from nudge.phone import phone_hash
from nudge.store import SUPPRESS_ALL, Consent, Suppression, consent_key, suppress
from tests.api.conftest import Gateway
from tests.api.test_webhooks import TWILIO_SID, post_twilio


async def _customer(gateway: Gateway, customer_id: str, **fields: object) -> str:
    number = f"+1415555{uuid.uuid4().int % 10_000:04d}"
    body = {"id": customer_id, "phone": number, **fields}
    r = await gateway.http.put(f"/v1/customers/{customer_id}", json=body)
    assert r.status_code == 200, r.text
    return number


async def test_consent_api_grants_withdraws_and_keeps_the_audit_trail(
    gateway: Gateway, customer_id: str
) -> None:
    """Grant then withdraw through the API: the current state follows, the trail keeps both with
    their source, wording, time and actor."""
    await _customer(gateway, customer_id)
    assert (await gateway.http.get(f"/v1/customers/{customer_id}/consent")).json()["current"] == []

    grant = {
        "source": "checkout_form",
        "text": "Offers by SMS",
        "at": "2026-11-01T10:00:00Z",
        "actor": "shop",
    }
    r = await gateway.http.post(f"/v1/customers/{customer_id}/consent", json=grant)
    assert r.status_code == 201, r.text
    assert r.json()["granted"] is True
    r = await gateway.http.post(f"/v1/customers/{customer_id}/consent:withdraw", json={"source": "email"})
    assert r.status_code == 200 and r.json()["granted"] is False

    record = (await gateway.http.get(f"/v1/customers/{customer_id}/consent")).json()
    assert [(c["granted"], c["source"]) for c in record["current"]] == [(False, "email")]
    trail = [(e["action"], e["source"], e["text"], e["actor"]) for e in record["history"]]
    # The audit names the API key, then the person the client named.
    assert trail == [
        ("granted", "checkout_form", "Offers by SMS", "tests (shop)"),
        ("withdrawn", "email", "", "tests"),
    ]
    assert record["history"][0]["at"].startswith("2026-11-01T10:00:00")


async def test_consent_api_rejects_bad_input_and_unknown_customers(
    gateway: Gateway, customer_id: str
) -> None:
    """No source is a 422 with the field named; an unknown customer is a 404 with its id."""
    await _customer(gateway, customer_id)
    r = await gateway.http.post(f"/v1/customers/{customer_id}/consent", json={"text": "hi"})
    assert r.status_code == 422 and "source" in r.text
    r = await gateway.http.post(
        f"/v1/customers/{customer_id}/consent", json={"source": "x", "channel": "fax"}
    )
    assert r.status_code == 422 and "channel" in r.text
    r = await gateway.http.post("/v1/customers/nobody/consent", json={"source": "x"})
    assert r.status_code == 404 and "nobody" in r.text
    assert (await gateway.http.get("/v1/customers/nobody/consent")).status_code == 404


async def test_profile_consent_is_recorded_once_and_never_undoes_a_withdrawal(
    gateway: Gateway, customer_id: str
) -> None:
    """Consent in a profile upsert is recorded for a customer without one; re-sending the same
    profile after a withdrawal does not grant it again."""
    profile = {"consent": {"source": "crm_import", "text": "Offers by SMS"}}
    await _customer(gateway, customer_id, **profile)
    await gateway.http.post(f"/v1/customers/{customer_id}/consent:withdraw", json={"source": "email"})
    r = await gateway.http.post("/v1/customers:batch", json={"customers": [{"id": customer_id, **profile}]})
    assert r.status_code == 200, r.text

    record = (await gateway.http.get(f"/v1/customers/{customer_id}/consent")).json()
    assert [c["granted"] for c in record["current"]] == [False]
    assert [e["action"] for e in record["history"]] == ["granted", "withdrawn"]


async def test_stop_withdraws_consent_and_start_restores_only_that(
    gateway: Gateway, customer_id: str
) -> None:
    """STOP withdraws the consent of the number's customers (source: the reply); START grants it
    back, but only a consent a reply withdrew: one withdrawn another way stays withdrawn. START
    does not lift an unreachable number's suppression."""
    number = await _customer(gateway, customer_id, consent={"source": "signup_form"})

    async def reply(text: str) -> None:
        form = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": TWILIO_SID, "From": number, "Body": text}
        assert (await post_twilio(gateway, "/v1/webhooks/twilio/inbound", form)).status_code == 200

    await reply("stop")
    async with gateway.sessions() as session:
        current = await session.get(Consent, consent_key(customer_id))
    assert current is not None and (current.granted, current.source) == (False, "reply:twilio")

    await reply("START")
    record = (await gateway.http.get(f"/v1/customers/{customer_id}/consent")).json()
    assert [(c["granted"], c["source"]) for c in record["current"]] == [(True, "reply:twilio")]
    assert [e["action"] for e in record["history"]] == ["granted", "withdrawn", "granted"]
    assert record["history"][-1]["text"] == "START"

    r = await gateway.http.post(
        f"/v1/customers/{customer_id}/consent:withdraw", json={"source": "support_email"}
    )
    assert r.status_code == 200, r.text
    await reply("START")
    record = (await gateway.http.get(f"/v1/customers/{customer_id}/consent")).json()
    assert [(c["granted"], c["source"]) for c in record["current"]] == [(False, "support_email")]
    assert [e["action"] for e in record["history"]] == ["granted", "withdrawn", "granted", "withdrawn"]

    async with gateway.sessions() as session:
        await suppress(session, number, reason="provider:21211", source="twilio", scope=SUPPRESS_ALL)
        await session.commit()
    await reply("start")
    async with gateway.sessions() as session:
        row = await session.get(Suppression, phone_hash(number))
    assert row is not None and row.scope == SUPPRESS_ALL
