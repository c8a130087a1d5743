"""The gateway's /metrics: Prometheus text behind a read key, counting what came in, with label
values from bounded sets only (no customer id, number or message id)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from nudge.store import Link, utcnow
from simulator.customer import HANDSET_BROWSER
from starter.api.metrics import webhook_labels
from tests.api.conftest import Gateway
from tests.api.test_gateway import add_message


async def _samples(gateway: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await gateway.http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _delta(before: dict, after: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_count_events_receipts_clicks_and_time_webhooks(
    gateway: Gateway, customer_id: str
) -> None:
    """An event, a delivered receipt (and its duplicate), a person's and a bot's click each move
    their counter by exactly one; the webhook histogram counts both receipts; the text holds
    neither the customer id, the number, nor the message id."""
    message = await add_message(gateway, customer_id, created_at=utcnow() - timedelta(minutes=5))
    code = f"M{uuid.uuid4().hex[:7]}"
    async with gateway.sessions() as session:
        session.add(Link(code=code, message_id=message.id, target_url="https://shop.example.com/m"))
        await session.commit()
    before = await _samples(gateway)
    event = {"event_id": uuid.uuid4().hex, "customer_id": customer_id, "name": "page_viewed"}
    assert (await gateway.http.post("/v1/events", json=event)).status_code == 202
    assert (await gateway.http.post("/v1/events", json=event)).status_code == 202
    # Clicks first: one within a second of the delivery receipt would be a scanner's.
    await gateway.http.get(f"/l/{code}", headers={"user-agent": HANDSET_BROWSER})
    await gateway.http.head(f"/l/{code}")
    receipt = {"id": message.provider_message_id, "client_ref": message.id, "status": "delivered"}
    for _ in range(2):
        assert (await gateway.http.post("/v1/webhooks/simulator/status", json=receipt)).status_code == 200
    after = await _samples(gateway)

    assert _delta(before, after, "nudge_events_total", outcome="routed") == 1
    assert _delta(before, after, "nudge_events_total", outcome="duplicate") == 1
    assert (
        _delta(
            before, after, "nudge_receipts_total", provider="simulator", status="delivered", applied="true"
        )
        == 1
    )
    assert (
        _delta(
            before, after, "nudge_receipts_total", provider="simulator", status="delivered", applied="false"
        )
        == 1
    )
    assert _delta(before, after, "nudge_clicks_total", counted="true", bot="") == 1
    assert _delta(before, after, "nudge_clicks_total", counted="false", bot="head") == 1
    assert _delta(before, after, "nudge_webhook_seconds_count", provider="simulator", kind="status") == 2
    text = (await gateway.http.get("/metrics")).text
    for private in (customer_id, "+8613800138000", "13800138000", message.id, code):
        assert private not in text, private


async def test_metrics_need_a_read_key(gateway: Gateway) -> None:
    """Without a key /metrics is 401; an events-only key is 403."""
    anonymous = await gateway.http.get("/metrics", headers={"Authorization": ""})
    created = await gateway.http.post("/v1/keys", json={"name": "svc", "scopes": ["events"]})
    events_only = await gateway.http.get(
        "/metrics", headers={"Authorization": f"Bearer {created.json()['key']}"}
    )
    assert (anonymous.status_code, events_only.status_code) == (401, 403)


def test_webhook_labels_come_from_known_sets_only() -> None:
    """A provider or kind the gateway does not know reads ``other``; the token in the path never
    becomes a label; a non-webhook path has none."""
    assert webhook_labels("/v1/webhooks/aliyun/s3cr3t-token/report") == ("aliyun", "report")
    assert webhook_labels("/v1/webhooks/twilio/status") == ("twilio", "status")
    assert webhook_labels("/v1/webhooks/evil-x/zzz") == ("other", "other")
    assert webhook_labels("/v1/events") is None and webhook_labels("/v1/webhooks") is None
