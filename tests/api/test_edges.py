"""The gateway's edges under hostile input: non-finite numbers, identifiers, timestamps, and
workflow ids that two customers could share."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from nudge.contracts import EVENT
from nudge.models import Event, JourneyInput
from nudge.store import Customer, EventRecord, JourneyEntry
from tests.api.conftest import Gateway
from workflows import PaymentSuccess


def event(customer_id: str, name: str = "page_viewed", **extra: Any) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "customer_id": customer_id, "name": name, **extra}


async def stored(gateway: Gateway, model: Any, key: str) -> Any:
    async with gateway.sessions() as session:
        return await session.get(model, key)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"amount": NaN}',
        b'{"amount": Infinity}',
        b'{"amount": -Infinity}',
        b'{"amount": 1e999}',
        b'{"items": [1, {"price": NaN}]}',
    ],
    ids=["nan", "infinity", "minus-infinity", "overflow", "nested"],
)
async def test_non_finite_numbers_in_properties_are_422_and_nothing_is_stored(
    gateway: Gateway, raw: bytes
) -> None:
    """JSON's NaN, Infinity and 1e999 (which parses to infinity) in an event's properties are
    refused with 422 naming the field; no event is stored and no journey starts."""
    event_id = uuid.uuid4().hex
    body = b'{"event_id": "%s", "customer_id": "edge-1", "name": "order_paid", "properties": %s}' % (
        event_id.encode(),
        raw,
    )
    response = await gateway.http.post(
        "/v1/events", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "must be finite" in response.text and "properties." in response.text
    assert await stored(gateway, EventRecord, event_id) is None


async def test_a_large_finite_number_is_still_accepted(gateway: Gateway) -> None:
    """1e308 is finite: accepted (202), as JSON allows it."""
    response = await gateway.http.post("/v1/events", json=event("edge-2", properties={"amount": 1e308}))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "customer_id",
    ["a\nb", "a\x00b", "tab\there", "\u2028x", "x\x7f", "x\x85", " lead", "trail ", ""],
    ids=[
        "newline",
        "nul",
        "tab",
        "line-separator",
        "del",
        "c1-nel",
        "leading-space",
        "trailing-space",
        "empty",
    ],
)
async def test_identifiers_with_control_characters_are_422(gateway: Gateway, customer_id: str) -> None:
    """Customer ids (in events and profiles) with control characters, line separators or
    whitespace at an end are refused with 422; no customer is created."""
    as_event = await gateway.http.post("/v1/events", json=event(customer_id))
    as_profile = await gateway.http.post("/v1/customers:batch", json={"customers": [{"id": customer_id}]})
    assert (as_event.status_code, as_profile.status_code) == (422, 422), (as_event.text, as_profile.text)
    # A NUL is refused before the schema is read (tests below), the rest by the id's pattern.
    where = ("body",) if "\x00" in customer_id else ("customer_id", "id")
    assert any(e["loc"][-1] in where for e in as_event.json()["detail"])
    if customer_id and "\x00" not in customer_id:  # PostgreSQL cannot even be asked about a NUL
        assert await stored(gateway, Customer, customer_id) is None


@pytest.mark.parametrize("customer_id", ["c-1", "user@example.com", "客户 42", "a:b%c", "x" * 200])
async def test_identifiers_of_any_printable_form_are_accepted(gateway: Gateway, customer_id: str) -> None:
    """Printable ids, spaces inside, non-ASCII, ':' and '%' included, up to 200 characters, go."""
    response = await gateway.http.post("/v1/events", json=event(customer_id))
    assert response.status_code == 202, response.text


def test_identifier_rule_is_declared_in_the_openapi_schema() -> None:
    """The schema tells clients the rule: the event's and the profile's ids carry the pattern."""
    from nudge.models import IDENTIFIER_PATTERN
    from starter.api import create_app

    schemas = create_app().openapi()["components"]["schemas"]
    assert schemas["EventIn"]["properties"]["customer_id"]["pattern"] == IDENTIFIER_PATTERN
    assert schemas["CustomerCreate"]["properties"]["id"]["pattern"] == IDENTIFIER_PATTERN


@pytest.mark.parametrize(
    ("occurred_at", "why"),
    [
        (0, "not a number"),
        (1764580000, "not a number"),
        ("1970-01-01T00:00:00Z", "before 2000-01-01"),
        ("2026-12-01T10:00:00", "timezone"),
        ("2999-01-01T00:00:00Z", "more than a day in the future"),
        ("yesterday", "datetime"),
    ],
)
async def test_implausible_timestamps_are_422(gateway: Gateway, occurred_at: Any, why: str) -> None:
    """An integer occurred_at (0 would be 1970), one before 2000, one without an offset, one far
    ahead, and a non-date are refused with 422 and why."""
    response = await gateway.http.post("/v1/events", json=event("edge-3", occurred_at=occurred_at))
    assert response.status_code == 422, response.text
    assert why in response.text


async def test_an_iso_timestamp_with_an_offset_is_kept_as_that_instant(gateway: Gateway) -> None:
    """2026-11-30T18:00:00+08:00 is accepted and stored as 10:00 UTC."""
    body = event("edge-4", occurred_at="2026-11-30T18:00:00+08:00")
    assert (await gateway.http.post("/v1/events", json=body)).status_code == 202
    record = await stored(gateway, EventRecord, body["event_id"])
    assert record is not None and record.occurred_at.isoformat() == "2026-11-30T10:00:00+00:00"


async def test_two_customers_whose_ids_and_keys_concatenate_alike_get_two_journeys(gateway: Gateway) -> None:
    """Customer `col` paying order `x:y` and customer `col:x` paying order `y` used to share
    journey:payment_success:col:x:y, so one confirmation was lost; now each gets its own journey."""
    tag = uuid.uuid4().hex[:6]
    first = await gateway.http.post(
        "/v1/events", json=event(f"col{tag}", "order_paid", properties={"order_id": "x:y", "amount": "1"})
    )
    second = await gateway.http.post(
        "/v1/events", json=event(f"col{tag}:x", "order_paid", properties={"order_id": "y", "amount": "2"})
    )
    [one] = first.json()["workflow_ids"]
    [two] = second.json()["workflow_ids"]
    assert one != two
    assert [t["action"] for t in first.json()["touched"] + second.json()["touched"]] == ["started", "started"]
    assert one == f"journey:payment_success:col{tag}:x%3Ay"
    assert two == f"journey:payment_success:col{tag}%3Ax:y"
    for workflow_id in (one, two):
        await gateway.client.get_workflow_handle(workflow_id).terminate("test done")


async def test_a_journey_started_under_its_old_id_is_still_reached(gateway: Gateway) -> None:
    """A payment journey started before ids were escaped (customer `a:b`, under its legacy id, with
    its entry in the store) is found there by the next event for it: signalled, not started again
    under the new id."""
    customer = f"old{uuid.uuid4().hex[:6]}:b"
    legacy = PaymentSuccess.legacy_workflow_id(customer, "o1")
    assert legacy != PaymentSuccess.workflow_id(customer, "o1")
    first = Event(event_id="e0", customer_id=customer, name="order_paid", properties={"order_id": "o1"})
    handle = await gateway.client.start_workflow(
        PaymentSuccess.run,
        JourneyInput(customer_id=customer, key="o1"),
        id=legacy,
        task_queue=gateway.task_queue,
        start_signal=EVENT.name,
        start_signal_args=[first],
    )
    async with gateway.sessions() as session:
        session.add(Customer(id=customer))
        session.add(
            JourneyEntry(
                workflow_id=legacy,
                customer_id=customer,
                journey="payment_success",
                key="o1",
                run_id=handle.result_run_id,
            )
        )
        await session.commit()
    again = await gateway.http.post(
        "/v1/events", json=event(customer, "order_paid", properties={"order_id": "o1"})
    )
    assert again.status_code == 202, again.text
    assert [(t["workflow_id"], t["action"]) for t in again.json()["touched"]] == [(legacy, "signalled")]
    await handle.terminate("test done")


async def test_head_of_a_short_link_answers_like_get_without_counting_a_click(gateway: Gateway) -> None:
    """HEAD /l/{code} answers 302 to the target (404 for an unknown code) as GET does; it is
    recorded as a bot's request and does not mark the message clicked; a person's GET after it does."""
    from datetime import timedelta

    from sqlmodel import col, select

    from nudge.store import Click, Link, Message, utcnow
    from simulator.customer import HANDSET_BROWSER
    from tests.api.test_gateway import add_message

    code = f"H{uuid.uuid4().hex[:7]}"
    message = await add_message(gateway, f"head-{code}", created_at=utcnow() - timedelta(minutes=5))
    async with gateway.sessions() as session:
        session.add(Link(code=code, message_id=message.id, target_url="https://shop.example.com/x"))
        await session.commit()
    head = await gateway.http.head(f"/l/{code}", headers={"user-agent": HANDSET_BROWSER})
    unknown = await gateway.http.head("/l/nope-nope")
    assert (head.status_code, head.headers["location"], unknown.status_code) == (
        302,
        "https://shop.example.com/x",
        404,
    )

    async def clicks() -> list[str | None]:
        async with gateway.sessions() as session:
            rows = await session.exec(select(Click).where(Click.code == code).order_by(col(Click.id)))
            return [c.bot for c in rows.all()]

    assert await clicks() == ["head"]
    async with gateway.sessions() as session:
        assert (await session.get(Message, message.id)).clicked is False  # type: ignore[union-attr]
    await gateway.http.get(f"/l/{code}", headers={"user-agent": HANDSET_BROWSER})
    assert await clicks() == ["head", None]
    async with gateway.sessions() as session:
        assert (await session.get(Message, message.id)).clicked is True  # type: ignore[union-attr]


async def test_docs_work_offline_every_asset_from_the_gateway(gateway: Gateway) -> None:
    """/docs and /redoc reference only the gateway's own URLs (no CDN), and each script, style and
    icon they name is served."""
    import re

    for page in ("/docs", "/redoc"):
        html = (await gateway.http.get(page)).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", html)
        referenced = {u for pair in urls for u in pair if u}
        assert referenced, page
        assert not [u for u in referenced if u.startswith(("http:", "https:", "//"))], (page, referenced)
        for url in referenced:
            assert (await gateway.http.get(url)).status_code == 200, (page, url)


async def test_a_body_over_the_limit_is_413_and_nothing_is_stored(gateway: Gateway) -> None:
    """A 5 MB event is refused with 413 (it was accepted and stored), declared or chunked; a webhook
    over its smaller limit too; the same event under the limit goes."""
    big = event("edge-5", properties={"blob": "x" * 5_000_000})
    declared = await gateway.http.post("/v1/events", json=big)
    assert declared.status_code == 413 and "over the limit of 1048576 bytes" in declared.json()["detail"]

    async def chunks() -> Any:
        payload = b'{"event_id": "%s", "customer_id": "edge-5", "name": "x", "properties": {"blob": "' % (
            big["event_id"].encode()
        )
        yield payload
        for _ in range(50):
            yield b"y" * 100_000
        yield b'"}}'

    chunked = await gateway.http.post(
        "/v1/events", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    assert await stored(gateway, EventRecord, big["event_id"]) is None

    webhook = await gateway.http.post("/v1/webhooks/twilio/status", content=b"a=" + b"b" * 100_000)
    assert webhook.status_code == 413
    small = event("edge-5", properties={"blob": "x" * 1000})
    assert (await gateway.http.post("/v1/events", json=small)).status_code == 202


async def test_a_batch_over_its_cap_is_422_saying_the_cap(gateway: Gateway) -> None:
    """customers:batch takes at most 10,000 profiles; 10,001 is refused with 422 naming the cap."""
    batch = {"customers": [{"id": f"b{i}"} for i in range(10_001)]}
    response = await gateway.http.post("/v1/customers:batch", json=batch)
    assert response.status_code == 422
    assert "at most 10000" in response.text


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (rb'{"id": "%s", "name": "Ada\u0000"}', "body"),
        (rb'{"id": "%s", "name": "Ada", "attributes": {"tier": "\U0000"}}', "body"),
        (rb'{"id": "%s", "name": "Ada", "consent": {"source": "form\\\u0000"}}', "body"),
    ],
    ids=["in-a-name", "upper-case-escape-in-attributes", "after-an-escaped-backslash"],
)
async def test_nul_in_a_body_is_422_and_nothing_is_stored(
    gateway: Gateway, customer_id: str, raw: bytes, where: str
) -> None:
    """PostgreSQL cannot store NUL in text (it answered 500 for a name with one): every body with a
    JSON-escaped NUL gets the one 422 shape, naming the body, and nothing is stored."""
    response = await gateway.http.put(
        f"/v1/customers/{customer_id}",
        content=raw.replace(b"%s", customer_id.encode()),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json() == {
        "detail": [
            {"loc": [where], "msg": f"the {where} must not contain NUL (U+0000)", "type": "string_nul"}
        ]
    }
    assert await stored(gateway, Customer, customer_id) is None


async def test_a_backslash_before_u0000_in_text_is_not_a_nul(gateway: Gateway, customer_id: str) -> None:
    """``\\\\u0000`` in JSON is a backslash followed by the text ``u0000``: stored as it is."""
    raw = b'{"id": "%s", "name": "C:\\\\u0000"}' % customer_id.encode()
    response = await gateway.http.put(
        f"/v1/customers/{customer_id}", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert (await stored(gateway, Customer, customer_id)).name == "C:\\u0000"


async def test_nul_in_a_path_a_query_or_a_form_is_422(gateway: Gateway) -> None:
    """A NUL percent-encoded in the path (a customer id), in the query, or in a webhook's form."""
    path = await gateway.http.get("/v1/customers/ada%00x")
    query = await gateway.http.delete("/v1/pauses/route/aliyun-cn", params={"reason": "a\x00b"})
    form = await gateway.http.post(
        "/v1/webhooks/twilio/status",
        content=b"MessageSid=SM1%00&MessageStatus=delivered",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert [(r.status_code, r.json()["detail"][0]["loc"]) for r in (path, query, form)] == [
        (422, ["path"]),
        (422, ["query"]),
        (422, ["body"]),
    ]
