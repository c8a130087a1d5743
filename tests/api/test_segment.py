"""The Segment spec's calls, in the exact shapes Segment's and RudderStack's docs show, through the
real gateway: what they start and store is read back from the database."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlmodel import select

from nudge.store import Customer, EventRecord, JourneyEntry
from tests.api.conftest import Gateway

# Segment's track example (segment.com/docs/connections/spec/track), for a cart this time.
TRACK: dict[str, Any] = {
    "anonymousId": "23adfd82-aa0f-45a7-a756-24f2a7a4c895",
    "context": {
        "library": {"name": "analytics.js", "version": "2.11.1"},
        "page": {"path": "/cart", "referrer": "", "title": "Cart", "url": "https://shop.example/cart"},
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_5)",
        "ip": "108.0.78.21",
        "locale": "en-US",
        "timezone": "America/New_York",
    },
    "event": "Cart Abandoned",
    "integrations": {},
    "messageId": "ajs-f8ca1e4de5024d9430b3928bd8ac6b96",
    "properties": {"cart_id": "k1", "items": 2},
    "receivedAt": "2026-11-30T19:11:01.266Z",
    "sentAt": "2026-11-30T19:11:01.169Z",
    "timestamp": "2026-11-30T19:11:01.249Z",
    "type": "track",
    "userId": "AiUGstSDIg",
    "originalTimestamp": "2026-11-30T19:11:01.152Z",
}
# Segment's identify example (segment.com/docs/connections/spec/identify).
IDENTIFY: dict[str, Any] = {
    "anonymousId": "507f191e810c19729de860ea",
    "channel": "browser",
    "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0", "locale": "zh-CN", "timezone": "Asia/Shanghai"},
    "integrations": {"All": False, "Mixpanel": True, "Salesforce": True},
    "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
    "receivedAt": "2026-02-23T22:28:55.387Z",
    "sentAt": "2026-02-23T22:28:55.111Z",
    "timestamp": "2026-02-23T22:28:55.111Z",
    "traits": {
        "name": "Peter Gibbons",
        "email": "peter@example.com",
        "plan": "premium",
        "logins": 5,
        "address": {
            "street": "6th St",
            "city": "San Francisco",
            "state": "CA",
            "postalCode": "94103",
            "country": "USA",
        },
    },
    "type": "identify",
    "userId": "97980cfea0067",
    "version": "1.1",
}


def call(template: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The example with a user and message id of its own (the test server outlives a test)."""
    body = copy.deepcopy(template)
    body |= {"userId": f"seg-{uuid.uuid4().hex[:10]}", "messageId": str(uuid.uuid4())}
    return body | changes


async def event_rows(gateway: Gateway, customer_id: str) -> list[EventRecord]:
    async with gateway.sessions() as session:
        return list(
            (await session.exec(select(EventRecord).where(EventRecord.customer_id == customer_id))).all()
        )


async def test_a_track_call_starts_the_journey_and_its_redelivery_is_a_duplicate(gateway: Gateway) -> None:
    """``Cart Abandoned`` is the event ``cart_abandoned``: it starts the cart journey; the same
    messageId again is a duplicate; one row, under the messageId, at the call's timestamp."""
    body = call(TRACK)
    first = await gateway.http.post("/v1/track", json=body)
    again = await gateway.http.post("/v1/track", json=body)
    assert first.status_code == again.status_code == 200, first.text
    assert (first.json()["status"], again.json()["status"]) == ("accepted", "duplicate")
    assert first.json()["workflow_ids"] == [f"journey:cart_abandonment:{body['userId']}:k1"]
    [row] = await event_rows(gateway, body["userId"])
    assert (row.event_id, row.name, row.properties) == (
        body["messageId"],
        "cart_abandoned",
        body["properties"],
    )
    assert row.occurred_at == datetime(2026, 11, 30, 19, 11, 1, 249_000, tzinfo=UTC)
    async with gateway.sessions() as session:
        entries = (
            await session.exec(select(JourneyEntry).where(JourneyEntry.customer_id == body["userId"]))
        ).all()
    assert [e.journey for e in entries] == ["cart_abandonment"]


async def test_identify_merges_traits_into_the_profile(gateway: Gateway) -> None:
    """The example's traits make the profile (name, attributes, the locale's language, the
    context's zone; "USA" is no two-letter country, so it stays in the address); a later
    identify with a phone alone keeps all that and adds the number in E.164."""
    body = call(IDENTIFY)
    customer_id = body["userId"]
    assert (await gateway.http.post("/v1/identify", json=body)).json()["status"] == "identified"
    later = call(IDENTIFY, userId=customer_id, traits={"phone": "138 0013 8000", "country": "cn"}, context={})
    assert (await gateway.http.post("/v1/identify", json=later)).status_code == 200
    async with gateway.sessions() as session:
        customer = await session.get(Customer, customer_id)
    assert customer is not None
    assert (customer.name, customer.phone, customer.country, customer.timezone) == (
        "Peter Gibbons",
        "+8613800138000",
        "CN",
        "Asia/Shanghai",
    )
    assert customer.attributes == {
        "email": "peter@example.com",
        "plan": "premium",
        "logins": 5,
        "address": IDENTIFY["traits"]["address"],
        "language": "zh",
    }


async def test_a_call_with_only_an_anonymous_id_is_a_422_naming_user_id(gateway: Gateway) -> None:
    body = call(TRACK)
    del body["userId"]
    response = await gateway.http.post("/v1/track", json=body)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "userId"] and "anonymousId" in error["msg"]
    assert await event_rows(gateway, TRACK["userId"]) == []


async def test_a_bad_phone_in_traits_is_a_422_and_nothing_is_stored(gateway: Gateway) -> None:
    body = call(IDENTIFY, traits={"name": "X", "phone": "12"})
    response = await gateway.http.post("/v1/identify", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "traits", "phone"]
    async with gateway.sessions() as session:
        assert await session.get(Customer, body["userId"]) is None


async def test_an_unknown_zone_in_the_context_is_a_422_naming_it(gateway: Gateway) -> None:
    body = call(IDENTIFY, context={"timezone": "Mars/Olympus"})
    response = await gateway.http.post("/v1/identify", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "context", "timezone"]
    async with gateway.sessions() as session:
        assert await session.get(Customer, body["userId"]) is None


async def test_a_rudderstack_batch_takes_each_call_in_order(gateway: Gateway) -> None:
    """A batch as RudderStack's webhook destination sends it: identify, track, page and a group,
    which is skipped with its reason; a page is the event ``page_viewed`` with its name."""
    user = f"rs-{uuid.uuid4().hex[:10]}"
    rudder = {
        "channel": "web",
        "rudderId": str(uuid.uuid4()),
        "context": {"library": {"name": "RudderLabs JavaScript SDK"}},
    }
    calls = [
        call(IDENTIFY, userId=user, **rudder),
        call(TRACK, userId=user, event="Product Viewed", properties={"sku": "A1"}, **rudder),
        {
            **call(TRACK, userId=user, **rudder),
            "type": "page",
            "name": "Pricing",
            "properties": {"path": "/pricing"},
        },
        {"type": "group", "userId": user, "groupId": "g1", "messageId": str(uuid.uuid4()), "traits": {}},
    ]
    for item in calls[2:]:
        item.pop("event", None)
    response = await gateway.http.post("/v1/batch", json={"batch": calls})
    assert response.status_code == 200, response.text
    assert [(r["type"], r["status"]) for r in response.json()["results"]] == [
        ("identify", "identified"),
        ("track", "accepted"),
        ("page", "accepted"),
        ("group", "skipped"),
    ]
    rows = sorted(await event_rows(gateway, user), key=lambda r: r.name)
    assert [(r.name, r.properties) for r in rows] == [
        ("page_viewed", {"path": "/pricing", "name": "Pricing"}),
        ("product_viewed", {"sku": "A1"}),
    ]


async def test_a_batch_with_one_bad_call_is_a_422_and_takes_none(gateway: Gateway) -> None:
    user = f"rs-{uuid.uuid4().hex[:10]}"
    batch = [call(TRACK, userId=user), call(TRACK, userId=user, event="!!!")]
    response = await gateway.http.post("/v1/batch", json={"batch": batch})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "batch", 1, "event"]
    assert await event_rows(gateway, user) == []


async def test_an_identify_that_would_leave_a_bad_stored_profile_is_a_422_and_takes_none(
    gateway: Gateway,
) -> None:
    """A profile stored before zones were checked (``Mars/Olympus``): merging traits into it
    fails the check, so the batch answers 422 naming the zone and stores none of its calls."""
    user = f"seg-{uuid.uuid4().hex[:10]}"
    async with gateway.sessions() as session:
        session.add(Customer(id=user, timezone="Mars/Olympus"))
        await session.commit()
    batch = [call(TRACK, userId=user), call(IDENTIFY, userId=user, context={})]
    response = await gateway.http.post("/v1/batch", json={"batch": batch})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "batch", 1, "context", "timezone"]
    assert await event_rows(gateway, user) == []


async def test_two_identifies_in_one_batch_both_count(gateway: Gateway) -> None:
    user = f"seg-{uuid.uuid4().hex[:10]}"
    batch = [
        call(IDENTIFY, userId=user, traits={"plan": "free"}, context={}),
        call(IDENTIFY, userId=user, traits={"name": "Ada"}, context={}),
    ]
    assert (await gateway.http.post("/v1/batch", json={"batch": batch})).status_code == 200
    async with gateway.sessions() as session:
        customer = await session.get(Customer, user)
    assert customer is not None and (customer.name, customer.attributes) == ("Ada", {"plan": "free"})
