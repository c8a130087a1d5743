from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, func, select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from nudge.contracts import SA_CUSTOMER, SA_JOURNEY
from nudge.converter import data_converter
from nudge.models import Event, JourneyResult, JourneyState, MessageStatus, MessageUpdate
from nudge.store import Click, Customer, EventRecord, JourneyEntry, Link, Message, MessageStatusChange, utcnow
from starter.api.services.intake import EventRouter
from tests.api.conftest import Gateway
from tests.polling import wait_until
from workflows import JOURNEYS


def event(customer_id: str, name: str, **properties: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "customer_id": customer_id,
        "name": name,
        "properties": properties,
    }


async def count(gateway: Gateway, model: Any, *where: Any) -> int:
    async with gateway.sessions() as session:
        return (await session.exec(select(func.count()).select_from(model).where(*where))).one()


async def add_message(gateway: Gateway, customer_id: str, **fields: Any) -> Message:
    defaults: dict[str, Any] = {
        "idempotency_key": f"{customer_id}/{uuid.uuid4().hex}",
        "workflow_id": f"journey:cart_abandonment:{customer_id}:gone",
        "journey": "cart_abandonment",
        "step": "send:cart_reminder",
        "customer_id": customer_id,
        "template": "cart_reminder",
        "category": "marketing",
        "to": "+8613800138000",
        "body": "Ada, your cart is waiting",
        "status": "submitted",
        "provider": "simulator",
        "provider_message_id": f"SIM{uuid.uuid4().hex[:20]}",
    }
    message = Message(**(defaults | fields))
    async with gateway.sessions() as session:
        session.add(message)
        await session.commit()
    return message


async def test_post_event_cart_abandoned_starts_journey(gateway: Gateway, customer_id: str) -> None:
    """cart_abandoned with a cart_id is accepted (202) and starts that cart's journey on Temporal."""
    body = event(customer_id, "cart_abandoned", cart_id="k1")
    workflow_id = f"journey:cart_abandonment:{customer_id}:k1"

    response = await gateway.http.post("/v1/events", json=body)

    assert response.status_code == 202
    assert response.json() == {
        "event_id": body["event_id"],
        "duplicate": False,
        "workflow_ids": [workflow_id],
        "touched": [
            {"workflow_id": workflow_id, "journey": "cart_abandonment", "action": "started", "reason": None}
        ],
    }
    handle = gateway.client.get_workflow_handle(workflow_id)
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    assert (description.workflow_type, description.task_queue) == ("CartAbandonment", gateway.task_queue)
    assert description.typed_search_attributes[SA_CUSTOMER] == customer_id
    assert description.typed_search_attributes[SA_JOURNEY] == "cart_abandonment"
    state = await handle.query("state", result_type=JourneyState)
    assert (state.key, state.events_seen) == ("k1", ["cart_abandoned"])
    async with gateway.sessions() as session:
        entry = await session.get(JourneyEntry, workflow_id)
    assert entry is not None and (entry.run_id, entry.entries) == (description.run_id, 1)


async def test_post_event_duplicate_event_id_starts_nothing(gateway: Gateway, customer_id: str) -> None:
    """Re-posting an event_id is acknowledged as a duplicate: no new row, run or signal."""
    body = event(customer_id, "cart_abandoned", cart_id="k1")
    workflow_id = f"journey:cart_abandonment:{customer_id}:k1"
    await gateway.http.post("/v1/events", json=body)
    handle = gateway.client.get_workflow_handle(workflow_id)
    first_run = (await handle.describe()).run_id

    response = await gateway.http.post("/v1/events", json=body)

    assert response.status_code == 202
    assert response.json()["duplicate"] is True
    assert response.json()["workflow_ids"] == [workflow_id]
    assert [t["action"] for t in response.json()["touched"]] == ["earlier"]
    assert await count(gateway, EventRecord, EventRecord.customer_id == customer_id) == 1
    assert (await handle.describe()).run_id == first_run
    state = await handle.query("state", result_type=JourneyState)
    assert state.events_seen == ["cart_abandoned"]


async def test_event_routing_that_fails_stores_nothing_so_the_retry_routes_it(
    gateway: Gateway, customer_id: str
) -> None:
    """When Temporal cannot be reached, the event is not stored: the sender's retry (same id) is
    routed and starts the journey, instead of being taken for a duplicate and lost."""
    unreachable = await Client.connect("127.0.0.1:1", lazy=True, data_converter=data_converter)
    down = EventRouter(
        client=unreachable, sessions=gateway.sessions, journeys=JOURNEYS, task_queue=gateway.task_queue
    )
    up = EventRouter(
        client=gateway.client, sessions=gateway.sessions, journeys=JOURNEYS, task_queue=gateway.task_queue
    )
    body = Event.model_validate(event(customer_id, "cart_abandoned", cart_id="k1"))

    with pytest.raises(RuntimeError, match="connect"):
        await down.route(body)
    assert await count(gateway, EventRecord, EventRecord.event_id == body.event_id) == 0

    result = await up.route(body)
    assert (result.duplicate, [t.action for t in result.touched]) == (False, ["started"])
    assert await count(gateway, EventRecord, EventRecord.event_id == body.event_id) == 1
    assert (await up.route(body)).duplicate is True


async def test_post_event_second_abandon_of_same_cart_signals_running_journey(
    gateway: Gateway, customer_id: str
) -> None:
    """A new cart_abandoned event for a cart whose journey runs reaches that run; no restart."""
    await gateway.http.post("/v1/events", json=event(customer_id, "cart_abandoned", cart_id="k1"))
    handle = gateway.client.get_workflow_handle(f"journey:cart_abandonment:{customer_id}:k1")
    first_run = (await handle.describe()).run_id

    response = await gateway.http.post("/v1/events", json=event(customer_id, "cart_abandoned", cart_id="k1"))

    assert [t["action"] for t in response.json()["touched"]] == ["signalled"]
    assert (await handle.describe()).run_id == first_run
    state = await handle.query("state", result_type=JourneyState)
    assert state.events_seen == ["cart_abandoned", "cart_abandoned"]


@pytest.mark.parametrize(
    ("content", "location", "error_type"),
    [
        (b'{"event_id": "e1", "name": "cart_abandoned"}', ["body", "customer_id"], "missing"),
        (
            b'{"event_id": "e1", "customer_id": "c1", "name": "Cart-Abandoned"}',
            ["body", "name"],
            "string_pattern_mismatch",
        ),
        (b"event_id=e1&customer_id=c1", ["body", 0], "json_invalid"),
    ],
    ids=["missing-customer-id", "bad-name", "not-json"],
)
async def test_post_event_malformed_is_422(
    gateway: Gateway, content: bytes, location: list[Any], error_type: str
) -> None:
    """A malformed event is refused with 422 and a detail saying which field is wrong and why;
    nothing is stored."""
    response = await gateway.http.post(
        "/v1/events", content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"]) == (location, error_type)
    assert error["msg"]
    assert await count(gateway, EventRecord) == 0


async def test_post_event_unknown_customer_creates_bare_customer(gateway: Gateway, customer_id: str) -> None:
    """An event for a customer the CRM has never seen creates a bare customer row."""
    response = await gateway.http.post("/v1/events", json=event(customer_id, "page_viewed", path="/"))

    assert response.status_code == 202
    assert response.json()["touched"] == []
    async with gateway.sessions() as session:
        customer = await session.get(Customer, customer_id)
    assert customer is not None
    assert (customer.name, customer.phone, customer.lifecycle_stage) == (None, None, "new")
    assert (await gateway.http.get(f"/v1/customers/{customer_id}")).json()["id"] == customer_id


async def test_last_active_at_follows_the_latest_event_whatever_order_they_arrive_in(
    gateway: Gateway, customer_id: str
) -> None:
    """The profile's last_active_at is the latest occurred_at of the customer's events: set when
    an event creates the customer, moved up by a later one, never back by an older one (a
    backfill), and kept when the profile is written over."""
    times = ["2026-05-01T10:00:00+08:00", "2026-05-03T00:00:00+00:00", "2026-04-01T00:00:00+00:00"]
    seen = []
    for at in times:
        body = {**event(customer_id, "page_viewed"), "occurred_at": at}
        assert (await gateway.http.post("/v1/events", json=body)).status_code == 202
        seen.append((await gateway.http.get(f"/v1/customers/{customer_id}")).json()["last_active_at"])
    profile = {"id": customer_id, "name": "Ada", "phone": "13800138000", "attributes": {}}
    assert (await gateway.http.put(f"/v1/customers/{customer_id}", json=profile)).status_code == 200
    seen.append((await gateway.http.get(f"/v1/customers/{customer_id}")).json()["last_active_at"])
    first, latest = "2026-05-01T02:00:00Z", "2026-05-03T00:00:00Z"
    assert [s.replace("+00:00", "Z") for s in seen] == [first, latest, latest, latest]


async def test_post_event_cart_without_cart_id_is_refused(gateway: Gateway, customer_id: str) -> None:
    """cart_abandoned without a cart_id is accepted but starts nothing, and says why."""
    response = await gateway.http.post("/v1/events", json=event(customer_id, "cart_abandoned"))

    assert response.status_code == 202
    body = response.json()
    assert body["workflow_ids"] == []
    [touch] = body["touched"]
    assert (touch["journey"], touch["action"]) == ("cart_abandonment", "refused")
    assert "cart_id" in touch["reason"]
    with pytest.raises(RPCError) as missing:
        await gateway.client.get_workflow_handle(touch["workflow_id"]).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    assert await count(gateway, JourneyEntry) == 0


async def test_post_event_order_paid_converts_cart_and_confirms_payment(
    gateway: Gateway, customer_id: str
) -> None:
    """order_paid signals the customer's running cart journey (which converts) and starts the
    payment confirmation, which sends once."""
    cart_id = f"journey:cart_abandonment:{customer_id}:k1"
    payment_id = f"journey:payment_success:{customer_id}:o1"
    await gateway.http.post("/v1/events", json=event(customer_id, "cart_abandoned", cart_id="k1"))

    response = await gateway.http.post(
        "/v1/events", json=event(customer_id, "order_paid", order_id="o1", amount="9.90")
    )

    assert response.status_code == 202
    touched = {(t["workflow_id"], t["action"]) for t in response.json()["touched"]}
    assert touched == {(cart_id, "signalled"), (payment_id, "started")}
    cart = await gateway.client.get_workflow_handle(cart_id, result_type=JourneyResult).result()
    assert (cart.outcome, cart.reason, cart.messages) == ("converted", "order_paid", [])
    await wait_until(
        lambda: bool(gateway.carrier.requests), what="the send reached the fake carrier", timeout=30
    )
    [confirmation] = gateway.carrier.requests
    sent = gateway.carrier.results[confirmation.idempotency_key]
    handle = gateway.client.get_workflow_handle(payment_id, result_type=JourneyResult)
    await handle.signal(
        "message", MessageUpdate(message_id=sent.message_id, kind="receipt", status=MessageStatus.DELIVERED)
    )
    payment = await handle.result()
    assert payment.outcome == "completed"
    assert (confirmation.template, confirmation.params) == (
        "payment_success",
        {"order_id": "o1", "amount": "9.90"},
    )


async def test_post_event_order_paid_again_for_a_finished_order_is_refused(
    gateway: Gateway, customer_id: str
) -> None:
    """Re-entry NEVER: a second order_paid for an order whose confirmation has run (a new event id,
    as a shop's resend after a crash has) is refused with the reason, starts no second run, and
    sends nothing more."""
    workflow_id = f"journey:payment_success:{customer_id}:o2"
    first = await gateway.http.post("/v1/events", json=event(customer_id, "order_paid", order_id="o2"))
    assert [(t["workflow_id"], t["action"]) for t in first.json()["touched"]] == [(workflow_id, "started")]
    await wait_until(
        lambda: bool(gateway.carrier.requests), what="the send reached the fake carrier", timeout=30
    )
    [confirmation] = gateway.carrier.requests
    sent = gateway.carrier.results[confirmation.idempotency_key]
    handle = gateway.client.get_workflow_handle(workflow_id, result_type=JourneyResult)
    await handle.signal(
        "message", MessageUpdate(message_id=sent.message_id, kind="receipt", status=MessageStatus.DELIVERED)
    )
    assert (await handle.result()).outcome == "completed"
    run_id = (await handle.describe()).run_id

    again = await gateway.http.post("/v1/events", json=event(customer_id, "order_paid", order_id="o2"))

    assert again.status_code == 202
    assert [(t["workflow_id"], t["action"], t["reason"]) for t in again.json()["touched"]] == [
        (workflow_id, "refused", "re-entry not allowed")
    ]
    assert (await handle.describe()).run_id == run_id
    assert [r.template for r in gateway.carrier.requests] == ["payment_success"]


async def test_simulator_receipt_updates_status_monotonically(gateway: Gateway, customer_id: str) -> None:
    """A delivered receipt is applied; a late 'sent' is stored but does not move the status back."""
    message = await add_message(gateway, customer_id)
    receipt = {"id": message.provider_message_id, "client_ref": message.id}

    delivered = await gateway.http.post(
        "/v1/webhooks/simulator/status", json={**receipt, "status": "delivered"}
    )
    late = await gateway.http.post(
        "/v1/webhooks/simulator/status",
        json={"id": message.provider_message_id, "status": "sent", "at": "2025-01-01T00:00:00Z"},
    )

    assert (delivered.status_code, delivered.json()) == (200, {"ok": True, "applied": True})
    assert (late.status_code, late.json()) == (200, {"ok": True, "applied": False})
    async with gateway.sessions() as session:
        stored = await session.get(Message, message.id)
        changes = (
            await session.exec(
                select(MessageStatusChange)
                .where(MessageStatusChange.message_id == message.id)
                .order_by(col(MessageStatusChange.id))
            )
        ).all()
    assert stored is not None and stored.status == "delivered"
    assert [(c.status, c.applied, c.provider) for c in changes] == [
        ("delivered", True, "simulator"),
        ("sent", False, "simulator"),
    ]
    assert changes[1].raw["status"] == "sent"


async def test_simulator_receipt_unknown_status_is_422(gateway: Gateway, customer_id: str) -> None:
    """A receipt with a status the simulator never sends is refused with 422 and not stored."""
    message = await add_message(gateway, customer_id)

    response = await gateway.http.post(
        "/v1/webhooks/simulator/status",
        json={"id": message.provider_message_id, "client_ref": message.id, "status": "exploded"},
    )

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "status"] and "unknown status 'exploded'" in error["msg"]
    assert await count(gateway, MessageStatusChange) == 0
    async with gateway.sessions() as session:
        stored = await session.get(Message, message.id)
    assert stored is not None and stored.status == "submitted"


async def test_short_link_records_click_and_redirects(gateway: Gateway, customer_id: str) -> None:
    """Following a short link records the click, marks the message clicked and redirects (302);
    a second request (here without a user agent, so a bot's) is recorded and redirected too."""
    message = await add_message(gateway, customer_id, created_at=utcnow() - timedelta(minutes=5))
    target = "https://shop.example.com/cart/k1?utm_source=sms"
    async with gateway.sessions() as session:
        session.add(Link(code="Ab3_x-9Z", message_id=message.id, target_url=target))
        await session.commit()

    first = await gateway.http.get("/l/Ab3_x-9Z", headers={"user-agent": "phone/1.0"})
    second = await gateway.http.get("/l/Ab3_x-9Z")

    assert (first.status_code, first.headers["location"]) == (302, target)
    assert (second.status_code, second.headers["location"]) == (302, target)
    async with gateway.sessions() as session:
        clicks = (await session.exec(select(Click).order_by(col(Click.id)))).all()
        stored = await session.get(Message, message.id)
    assert [(c.code, c.message_id) for c in clicks] == [("Ab3_x-9Z", message.id)] * 2
    assert clicks[0].user_agent == "phone/1.0"
    assert [c.bot for c in clicks] == [None, "user_agent"]
    assert stored is not None and stored.clicked is True


async def test_short_link_unknown_code_is_404(gateway: Gateway) -> None:
    """An unknown short-link code is a 404 and records no click."""
    response = await gateway.http.get("/l/nope")

    assert response.status_code == 404
    assert "nope" in response.json()["detail"]
    assert await count(gateway, Click) == 0


@pytest.mark.parametrize(
    ("phone", "country", "expected"),
    [("138 0013 8000", None, "+8613800138000"), ("(650) 253-0000", "US", "+16502530000")],
)
async def test_put_customer_normalises_phone(
    gateway: Gateway, customer_id: str, phone: str, country: str | None, expected: str
) -> None:
    """A customer's phone is stored in E.164, read in the customer's country (else the default)."""
    body = {"id": customer_id, "name": "Ada", "phone": phone, "country": country, "attributes": {"tier": 1}}

    response = await gateway.http.put(f"/v1/customers/{customer_id}", json=body)

    assert (response.status_code, response.json()) == (200, {"upserted": 1})
    stored = (await gateway.http.get(f"/v1/customers/{customer_id}")).json()
    assert (stored["phone"], stored["name"], stored["attributes"]) == (expected, "Ada", {"tier": 1})


async def test_put_customer_invalid_phone_is_422(gateway: Gateway, customer_id: str) -> None:
    """An invalid phone number is refused with 422, saying which customer, and nothing is stored."""
    response = await gateway.http.put(
        f"/v1/customers/{customer_id}", json={"id": customer_id, "phone": "12345"}
    )

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "phone"] and customer_id in error["msg"], error
    assert (await gateway.http.get(f"/v1/customers/{customer_id}")).status_code == 404


async def test_put_customer_path_and_body_ids_must_match(gateway: Gateway, customer_id: str) -> None:
    """A body whose id differs from the path's is refused, not stored under either id."""
    response = await gateway.http.put(f"/v1/customers/{customer_id}", json={"id": "someone-else"})

    assert response.status_code == 422
    assert await count(gateway, Customer) == 0


async def test_healthz_reports_ok(gateway: Gateway) -> None:
    """The health check answers 200 with status ok."""
    response = await gateway.http.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_openapi_lists_event_endpoint(gateway: Gateway) -> None:
    """The OpenAPI document describes POST /v1/events with its 202 response."""
    spec = (await gateway.http.get("/openapi.json")).json()
    assert "202" in spec["paths"]["/v1/events"]["post"]["responses"]
    assert "/l/{code}" in spec["paths"]
