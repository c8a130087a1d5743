"""Conversions credited at intake, and the funnel over HTTP judged against counts the test makes
itself from the rows it wrote (not from the report's query)."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from nudge.store import Complaint, Conversion, Message, utcnow
from tests.api.conftest import Gateway
from tests.api.test_gateway import add_message


def _goal(customer_id: str, *, at: datetime, **properties: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "customer_id": customer_id,
        "name": "order_paid",
        "properties": {"order_id": uuid.uuid4().hex[:8], **properties},
        "occurred_at": at.isoformat(),
    }


async def _conversions(gateway: Gateway, customer_id: str) -> list[Conversion]:
    async with gateway.sessions() as session:
        return list(
            (await session.exec(select(Conversion).where(Conversion.customer_id == customer_id))).all()
        )


async def test_a_goal_event_credits_the_last_message_from_a_journey_with_that_goal(gateway: Gateway) -> None:
    """order_paid credits the latest received message of cart_abandonment or onboarding (both have
    that goal) before it, with its scopes and the amount as revenue; a redelivery counts once."""
    customer = f"conv-{uuid.uuid4().hex[:8]}"
    now = utcnow()
    await add_message(gateway, customer, status="delivered", created_at=now - timedelta(hours=3))
    latest = await add_message(
        gateway,
        customer,
        journey="onboarding",
        step="send:welcome",
        template="welcome",
        variant="welcome_copy:b",
        route="aliyun-cn",
        signature="Shop",
        status="delivered",
        created_at=now - timedelta(hours=1),
    )
    # Not received, or after the event, or from a journey without that goal: never credited.
    await add_message(gateway, customer, status="failed", created_at=now - timedelta(minutes=30))
    await add_message(gateway, customer, status="blocked", created_at=now - timedelta(minutes=20))
    await add_message(gateway, customer, journey="payment_success", status="delivered", created_at=now)
    await add_message(gateway, customer, status="delivered", created_at=now + timedelta(minutes=5))

    body = _goal(customer, at=now - timedelta(seconds=1), amount=129.5, currency="CNY")
    assert (await gateway.http.post("/v1/events", json=body)).status_code == 202
    assert (await gateway.http.post("/v1/events", json=body)).status_code == 202  # redelivered

    [conversion] = await _conversions(gateway, customer)
    assert (conversion.message_id, conversion.journey, conversion.step, conversion.template) == (
        latest.id,
        "onboarding",
        "send:welcome",
        "welcome",
    )
    assert (conversion.variant, conversion.route, conversion.signature) == (
        "welcome_copy:b",
        "aliyun-cn",
        "Shop",
    )
    assert (conversion.revenue, conversion.currency, conversion.event_id) == (129.5, "CNY", body["event_id"])


async def test_a_goal_event_outside_the_window_or_without_a_message_is_not_a_conversion(
    gateway: Gateway,
) -> None:
    """A message sent 49 h before the goal event (the window is 48 h) is not credited; a customer
    with no message converts nothing; a non-numeric amount carries no revenue."""
    old, nobody, odd = (f"conv-{uuid.uuid4().hex[:8]}" for _ in range(3))
    now = utcnow()
    await add_message(gateway, old, status="delivered", created_at=now - timedelta(hours=49))
    await add_message(gateway, odd, status="sent", created_at=now - timedelta(hours=47))
    for customer in (old, nobody):
        assert (await gateway.http.post("/v1/events", json=_goal(customer, at=now))).status_code == 202
        assert await _conversions(gateway, customer) == []
    assert (await gateway.http.post("/v1/events", json=_goal(odd, at=now, amount="12"))).status_code == 202
    [conversion] = await _conversions(gateway, odd)
    assert conversion.revenue is None


async def test_funnel_matches_counts_made_from_the_rows_written(gateway: Gateway) -> None:
    """200 messages with random fates, complaints and conversions: the funnel per variant and per
    route equals what the test counts from its own list, rates and cost per conversion included."""
    journey = f"j{uuid.uuid4().hex[:8]}"
    rng = random.Random(12)
    statuses = ["delivered"] * 6 + ["undelivered", "sent", "submitted", "failed", "blocked", "pending"]
    reasons = ["unreachable:reply:stop", "consent_withdrawn:api", "paused:template=x", "quiet_hours"]
    rows: list[dict[str, Any]] = []
    now = utcnow()
    async with gateway.sessions() as session:
        for i in range(200):
            status = rng.choice(statuses)
            row = {
                "variant": rng.choice(["exp:a", "exp:b", None]),
                "route": rng.choice(["aliyun-cn", "tencent-cn"]),
                "status": status,
                "clicked": status == "delivered" and rng.random() < 0.4,
                "segments": rng.choice([1, 2]),
                "reason": rng.choice(reasons) if status == "blocked" else None,
                "opt_out": status in ("delivered", "sent") and rng.random() < 0.1,
                "code": status == "undelivered" and rng.random() < 0.5,
                "revenue": rng.choice([None, 10.0, 25.5])
                if status == "delivered" and rng.random() < 0.3
                else None,
                "converted": False,
            }
            row["converted"] = row["revenue"] is not None or (status == "delivered" and rng.random() < 0.05)
            row["cost"] = 0.045 * row["segments"] if status not in ("blocked", "pending") else None
            message = Message(
                idempotency_key=f"{journey}/{i}",
                workflow_id=f"journey:{journey}:c{i}",
                journey=journey,
                step="send:t",
                customer_id=f"{journey}-c{i}",
                template="t",
                category="marketing",
                variant=row["variant"],
                route=row["route"],
                status=status,
                clicked=row["clicked"],
                segments=row["segments"],
                cost=row["cost"],
                currency="CNY" if row["cost"] is not None else None,
                reason=row["reason"],
                created_at=now - timedelta(minutes=i),
            )
            session.add(message)
            common = {"message_id": message.id, "template": "t", "journey": journey}
            if row["opt_out"]:
                session.add(Complaint(kind="opt_out", code=f"r{i}", **common))
            if row["code"]:
                session.add(Complaint(kind="provider_code", code="30007", **common))
            if row["converted"]:
                for n in range(1 + (i % 2)):  # some messages earn two conversions
                    session.add(
                        Conversion(
                            event_id=f"{journey}-e{i}-{n}",
                            name="order_paid",
                            customer_id=message.customer_id,
                            step="send:t",
                            revenue=row["revenue"],
                            **common,
                        )
                    )
                row["conversions"] = 1 + (i % 2)
            rows.append(row)
        await session.commit()

    for dimension in ("variant", "route"):
        response = await gateway.http.get(
            "/v1/reports/funnel", params={"journey": journey, "group_by": dimension}
        )
        assert response.status_code == 200, response.text
        got = {tuple(r["group"].values()): r for r in response.json()}
        groups = {r[dimension] for r in rows}
        assert set(got) == {(g,) for g in groups}
        for group in groups:
            mine = [r for r in rows if r[dimension] == group]
            report = got[(group,)]
            sent = sum(r["status"] in ("submitted", "sent", "delivered", "undelivered") for r in mine)
            delivered = sum(r["status"] == "delivered" for r in mine)
            undelivered = sum(r["status"] == "undelivered" for r in mine)
            conversions = sum(r.get("conversions", 0) for r in mine)
            revenue = sum((r["revenue"] or 0) * r.get("conversions", 0) for r in mine)
            cost = sum(r["cost"] or 0 for r in mine)
            blocked_by = Counter(r["reason"].split(":")[0] for r in mine if r["status"] == "blocked")
            expected = {
                "messages": len(mine),
                "pending": sum(r["status"] == "pending" for r in mine),
                "blocked": sum(r["status"] == "blocked" for r in mine),
                "failed": sum(r["status"] == "failed" for r in mine),
                "sent": sent,
                "delivered": delivered,
                "undelivered": undelivered,
                "clicked": sum(r["clicked"] for r in mine),
                "converted": sum(r["converted"] for r in mine),
                "conversions": conversions,
                "opted_out": sum(r["opt_out"] for r in mine),
                "complained": sum(r["code"] for r in mine),
                "segments": sum(r["segments"] for r in mine),
                "blocked_by": dict(blocked_by),
                "currency": "CNY",
                "entered": None,
            }
            assert {k: report[k] for k in expected} == expected, (dimension, group)
            assert report["cost"] == _approx(cost) and report["revenue"] == _approx(revenue)
            assert report["cost_per_conversion"] == _approx(cost / conversions)
            assert report["rates"]["delivery"] == _approx(delivered / (delivered + undelivered))
            assert report["rates"]["click"] == _approx(expected["clicked"] / sent)
            assert report["rates"]["conversion"] == _approx(expected["converted"] / sent)
            assert report["rates"]["opt_out"] == _approx(expected["opted_out"] / sent)


def _approx(value: float) -> Any:
    import pytest

    return pytest.approx(value, rel=1e-9)


async def test_funnel_filters_by_time_and_counts_journey_entries(gateway: Gateway, customer_id: str) -> None:
    """``since``/``until`` select messages by creation time; a report per journey starts with its
    entries (unknown within a time range); nothing matched is no row; a bad range or dimension is a
    422 naming the parameter."""
    journey = f"j{uuid.uuid4().hex[:8]}"
    now = utcnow()
    for hours in (1, 5, 30):
        await add_message(
            gateway,
            f"{customer_id}-{hours}",
            journey=journey,
            status="delivered",
            created_at=now - timedelta(hours=hours),
        )
    since = (now - timedelta(hours=6)).isoformat()
    response = await gateway.http.get("/v1/reports/funnel", params={"journey": journey, "since": since})
    [row] = response.json()
    assert (row["messages"], row["delivered"], row["group"]) == (2, 2, {})

    events = [{"event_id": uuid.uuid4().hex, "customer_id": customer_id, "name": "signed_up"}]
    assert (await gateway.http.post("/v1/events", json=events[0])).status_code == 202
    per_journey = await gateway.http.get(
        "/v1/reports/funnel", params={"journey": "onboarding", "group_by": "journey"}
    )
    [onboarding] = per_journey.json()
    assert onboarding["group"] == {"journey": "onboarding"} and onboarding["entered"] >= 1
    # An entry row keeps only its latest time: within a range, the entries are not known.
    limited = await gateway.http.get(
        "/v1/reports/funnel", params={"journey": "onboarding", "group_by": "journey", "since": since}
    )
    assert [row["entered"] for row in limited.json()] in ([], [None])
    nothing = await gateway.http.get("/v1/reports/funnel", params={"journey": "no-such-journey"})
    assert nothing.json() == []

    bad_range = await gateway.http.get("/v1/reports/funnel", params={"since": since, "until": since})
    bad_dimension = await gateway.http.get("/v1/reports/funnel", params={"group_by": "phone"})
    assert bad_range.status_code == 422 and bad_range.json()["detail"][0]["loc"] == ["query", "since"]
    assert bad_dimension.status_code == 422 and bad_dimension.json()["detail"][0]["loc"][:2] == [
        "query",
        "group_by",
    ]


async def test_nudge_report_prints_what_the_api_answers(gateway: Gateway, customer_id: str) -> None:
    """``nudge report --json`` is the API's answer; the table shows the same counts and rates; a
    time it cannot read exits 2 with an example."""
    from tests.api.cli import nudge

    journey = f"j{uuid.uuid4().hex[:8]}"
    for i, status in enumerate(["delivered", "delivered", "delivered", "undelivered", "blocked"]):
        await add_message(
            gateway,
            f"{customer_id}-{i}",
            journey=journey,
            status=status,
            clicked=i == 0,
            variant="exp:a" if i % 2 else "exp:b",
            reason="quiet_hours" if status == "blocked" else None,
            created_at=utcnow() - timedelta(minutes=5),
        )
    params = {"journey": journey, "group_by": "variant"}
    api = (await gateway.http.get("/v1/reports/funnel", params=params)).json()
    as_json = await nudge(
        gateway, "report", "--journey", journey, "--by", "variant", "--json", "--since", "1h"
    )
    assert as_json.exit_code == 0, as_json.output
    import json

    assert json.loads(as_json.output) == api
    table = await nudge(gateway, "report", "--journey", journey, "--by", "variant")
    assert table.exit_code == 0, table.output
    lines = {line.split("│")[1].strip(): line for line in table.output.splitlines() if "exp:" in line}
    assert "2 100.0%" in lines["exp:b"] and "1 50.0%" in lines["exp:b"]  # delivered 2/2; clicked 1/2
    assert "1 50.0%" in lines["exp:a"]  # delivered 1 of the 2 with a receipt
    assert "quiet_hours 1" in lines["exp:b"]
    bad = await nudge(gateway, "report", "--since", "yesterday")
    assert bad.exit_code == 2 and "24h, 7d" in bad.output


async def test_funnel_per_broadcast_separates_each_broadcast_from_the_journeys(
    gateway: Gateway, customer_id: str
) -> None:
    """A broadcast's messages have their own funnel row (``group_by=broadcast``), a filter on one
    broadcast counts only its messages, and a journey's messages group under no broadcast."""
    statuses = {"spring": ["delivered", "delivered", "undelivered"], "summer": ["delivered", "blocked"]}
    for broadcast, each in statuses.items():
        for status in each:
            await add_message(
                gateway,
                customer_id,
                journey="broadcast",
                step=broadcast,
                broadcast_id=broadcast,
                status=status,
            )
    await add_message(gateway, customer_id, status="delivered")
    response = await gateway.http.get("/v1/reports/funnel", params={"group_by": "broadcast"})
    assert response.status_code == 200, response.text
    got = {
        row["group"]["broadcast"]: (row["messages"], row["delivered"], row["blocked"])
        for row in response.json()
    }
    assert got == {"spring": (3, 2, 0), "summer": (2, 1, 1), None: (1, 1, 0)}
    one = await gateway.http.get("/v1/reports/funnel", params={"broadcast": "summer"})
    [row] = one.json()
    assert (row["messages"], row["delivered"], row["blocked"]) == (2, 1, 1)
