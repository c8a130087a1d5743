"""Rates over time, message search and a customer's timeline over HTTP, judged against the rows
each test wrote itself (on SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from nudge.store import (
    Click,
    Complaint,
    Conversion,
    Customer,
    EventRecord,
    InboundMessage,
    JourneyEntry,
    MessageStatusChange,
)
from tests.api.conftest import Gateway
from tests.api.test_gateway import add_message

HOUR = datetime(2026, 11, 30, 8, tzinfo=UTC)


async def _add(gateway: Gateway, *rows: object) -> None:
    async with gateway.sessions() as session:
        session.add_all(rows)
        await session.commit()


async def test_rates_per_hour_count_each_message_in_the_hour_the_gate_decided_it(gateway: Gateway) -> None:
    """Each hour's point counts the messages created in it; the points add up to the funnel."""
    plan = [  # (hour offset, minute, status, clicked, converted, complained)
        (0, 5, "delivered", True, True, False),
        (0, 59, "delivered", False, False, False),
        (0, 30, "undelivered", False, False, True),
        (0, 40, "blocked", False, False, False),
        (2, 0, "delivered", True, False, False),
        (2, 10, "sent", False, False, False),
    ]
    expected: Counter[tuple[datetime, str]] = Counter()
    for offset, minute, status, clicked, converted, complained in plan:
        at = HOUR + timedelta(hours=offset, minutes=minute)
        message = await add_message(gateway, "rates-1", status=status, clicked=clicked, created_at=at)
        start = HOUR + timedelta(hours=offset)
        if status in ("delivered", "undelivered", "sent"):
            expected[start, "sent"] += 1
        if status != "sent":
            expected[start, status] += 1
        expected[start, "clicked"] += clicked
        if converted:
            expected[start, "converted"] += 1
            await _add(
                gateway,
                Conversion(
                    event_id=uuid.uuid4().hex, name="order_paid", customer_id="rates-1",
                    message_id=message.id, journey="cart_abandonment", step="s", template="cart_reminder",
                    at=at,
                ),
            )  # fmt: skip
        if complained:
            expected[start, "complained"] += 1
            await _add(
                gateway,
                Complaint(
                    message_id=message.id, kind="provider_code", code="30007", template="t", journey="j"
                ),
            )

    response = await gateway.http.get("/v1/reports/rates", params={"bucket": "hour"})

    assert response.status_code == 200, response.text
    points = response.json()
    assert [p["start"] for p in points] == [
        HOUR.isoformat().replace("+00:00", "Z"),
        (HOUR + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
    ]
    for point in points:
        start = datetime.fromisoformat(point["start"])
        for field in ("sent", "delivered", "undelivered", "clicked", "converted", "complained"):
            assert point[field] == expected[start, field], (start, field)
    first = points[0]
    assert first["rates"]["delivery"] == 2 / 3
    assert first["rates"]["click"] == 1 / 3
    assert first["rates"]["complaint"] == 1 / 3
    funnel = (await gateway.http.get("/v1/reports/funnel")).json()[0]
    for field in ("sent", "delivered", "undelivered", "clicked", "converted", "complained"):
        assert sum(p[field] for p in points) == funnel[field]

    daily = (await gateway.http.get("/v1/reports/rates", params={"bucket": "day"})).json()
    assert [p["start"][:10] for p in daily] == ["2026-11-30"]
    assert daily[0]["sent"] == 5


async def test_rates_refuse_a_bucket_or_range_they_do_not_know(gateway: Gateway) -> None:
    assert (await gateway.http.get("/v1/reports/rates", params={"bucket": "minute"})).status_code == 422
    bad = {"since": "2026-12-01T00:00:00+00:00", "until": "2026-11-01T00:00:00+00:00"}
    response = await gateway.http.get("/v1/reports/rates", params=bad)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "since"]


async def test_message_search_filters_pages_newest_first_and_masks_numbers(gateway: Gateway) -> None:
    made = []
    for i in range(7):
        status = "undelivered" if i % 2 else "delivered"
        route = "aliyun-cn" if i < 5 else "tencent-cn"
        made.append(
            await add_message(
                gateway, f"search-{i}", status=status, route=route, created_at=HOUR + timedelta(minutes=i)
            )
        )
    wanted = [m.id for m in reversed(made) if m.status == "undelivered" and m.route == "aliyun-cn"]

    first = await gateway.http.get(
        "/v1/messages", params={"status": "undelivered", "route": "aliyun-cn", "limit": 1}
    )
    assert first.status_code == 200, first.text
    page = first.json()
    ids = [m["id"] for m in page["messages"]]
    while page["next"]:
        page = (
            await gateway.http.get(
                "/v1/messages",
                params={"status": "undelivered", "route": "aliyun-cn", "limit": 1, "before": page["next"]},
            )
        ).json()
        ids += [m["id"] for m in page["messages"]]

    assert ids == wanted == [made[3].id, made[1].id]
    assert first.json()["messages"][0]["to"] == "+86*******8000"
    assert "body" not in first.json()["messages"][0]
    ranged = await gateway.http.get(
        "/v1/messages",
        params={
            "since": (HOUR + timedelta(minutes=2)).isoformat(),
            "until": (HOUR + timedelta(minutes=4)).isoformat(),
        },
    )
    assert [m["id"] for m in ranged.json()["messages"]] == [made[3].id, made[2].id]
    bad = await gateway.http.get("/v1/messages", params={"before": "not-a-cursor"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "before"]
    assert (await gateway.http.get("/v1/messages", params={"status": "lost"})).status_code == 422


async def test_timeline_tells_a_customers_story_in_time_order(gateway: Gateway) -> None:
    """Event, journey, gate decisions, receipts, a bot's fetch and a click, a reply and a
    conversion: each once, in time order, with the phone number masked."""
    customer = f"story-{uuid.uuid4().hex[:6]}"
    t = HOUR
    workflow_id = f"journey:cart_abandonment:{customer}:k1"
    await _add(
        gateway,
        Customer(id=customer, phone="+8613800138000"),
        EventRecord(event_id=f"{customer}-e1", customer_id=customer, name="cart_abandoned",
                    properties={"note": "call me on +8613800138000"}, occurred_at=t, received_at=t),
        JourneyEntry(workflow_id=workflow_id, journey="cart_abandonment", customer_id=customer,
                     entered_at=t + timedelta(seconds=1)),
    )  # fmt: skip
    sent = await add_message(
        gateway, customer, workflow_id=workflow_id, status="delivered", created_at=t + timedelta(minutes=1)
    )
    blocked = await add_message(
        gateway, customer, workflow_id=workflow_id, status="blocked", reason="quiet_hours:22-08",
        created_at=t + timedelta(minutes=2),
    )  # fmt: skip
    await _add(
        gateway,
        MessageStatusChange(message_id=sent.id, provider="simulator", status="delivered", applied=True,
                            at=t + timedelta(minutes=1, seconds=5)),
        Click(code="abc", message_id=sent.id, bot="too_soon", at=t + timedelta(minutes=1, seconds=5.5)),
        Click(code="abc", message_id=sent.id, at=t + timedelta(minutes=3)),
        InboundMessage(provider="simulator", provider_ref=f"{customer}-r1", from_number="+8613800138000",
                       text="STOP", keyword="stop", received_at=t + timedelta(minutes=4)),
        Conversion(event_id=f"{customer}-paid", name="order_paid", customer_id=customer,
                   message_id=sent.id, journey="cart_abandonment", step="s", template="cart_reminder",
                   at=t + timedelta(minutes=5)),
    )  # fmt: skip
    await add_message(gateway, "someone-else", status="delivered", created_at=t + timedelta(minutes=1))

    response = await gateway.http.get(f"/v1/customers/{customer}/timeline")

    assert response.status_code == 200, response.text
    entries = response.json()
    assert [(e["kind"], e["title"]) for e in entries] == [
        ("event", "cart_abandoned"),
        ("journey", "entered cart_abandonment"),
        ("message", "cart_reminder delivered"),
        ("receipt", "simulator receipt: delivered"),
        ("click", "link fetched by a bot (too_soon)"),
        ("message", "cart_reminder blocked: quiet_hours:22-08"),
        ("click", "clicked"),
        ("reply", "replied STOP"),
        ("conversion", "order_paid, credited to cart_reminder"),
    ]
    assert entries[2]["message_id"] == sent.id and entries[2]["workflow_id"] == workflow_id
    assert entries[5]["message_id"] == blocked.id
    assert "8613800138000" not in response.text
    missing = await gateway.http.get("/v1/customers/nobody-at-all/timeline")
    assert missing.status_code == 404
