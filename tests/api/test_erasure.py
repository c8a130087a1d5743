"""Forgetting a customer: nothing of them can be read back, the counts and the opt-out stay."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import SQLModel, col, func, select
from temporalio.client import WorkflowExecutionStatus

from nudge.phone import phone_hash
from nudge.store import (
    Click,
    Erasure,
    Link,
    Message,
    MessageStatusChange,
    Suppression,
)
from tests.api.conftest import Gateway
from tests.api.test_gateway import add_message
from tests.api.test_webhooks import TOKEN

NAME, PHONE, CITY = "Philippa Quill", "+8613700137007", "Hangzhou"
ADDRESS_HASH = "5e1f0c0ffee0ddba11deadbeefcafe01"
"""A click's keyed hash of the customer's address: it links their clicks, so it goes too."""
SECRETS = ("Philippa", "Quill", PHONE, PHONE[3:], CITY, ADDRESS_HASH)


async def everything_stored(gateway: Gateway) -> str:
    """Every row of every table, as text: the oracle does not ask the code under test what it kept."""
    rows = []
    async with gateway.sessions() as session:
        connection = await session.connection()
        for table in SQLModel.metadata.sorted_tables:
            for row in (await connection.execute(sa_select(table))).all():
                rows.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(rows)


async def a_customer_with_history(gateway: Gateway) -> tuple[str, str]:
    """A customer with a profile, consent, a running journey, an event, a message with its receipt,
    link and click, and a STOP reply from their number. Returns the customer and workflow id."""
    customer = f"gdpr-{uuid.uuid4().hex[:8]}"
    profile = {
        "id": customer,
        "name": NAME,
        "phone": PHONE,
        "attributes": {"city": CITY},
        "consent": {"source": "form"},
    }
    assert (await gateway.http.put(f"/v1/customers/{customer}", json=profile)).status_code == 200
    event = {
        "event_id": uuid.uuid4().hex,
        "customer_id": customer,
        "name": "order_paid",  # a transactional journey: it waits for its receipt, whatever the STOP
        "properties": {"order_id": "o1", "amount": "1.00", "gift_note": f"for {NAME}"},
    }
    accepted = await gateway.http.post("/v1/events", json=event)
    [workflow_id] = accepted.json()["workflow_ids"]
    message = await add_message(
        gateway, customer, to=PHONE, body=f"{NAME}, your cart is waiting", params={"name": NAME}
    )
    async with gateway.sessions() as session:
        session.add(
            MessageStatusChange(
                message_id=message.id, provider="twilio", status="delivered", raw={"To": PHONE}
            )
        )
        session.add(
            Link(
                code=f"g{uuid.uuid4().hex[:7]}",
                message_id=message.id,
                target_url=f"https://shop.example.com/?n={NAME}",
            )
        )
        session.add(
            Click(code="x", message_id=message.id, user_agent=f"{NAME}'s phone", ip_hash=ADDRESS_HASH)
        )
        await session.commit()
    # The customer's STOP, through the real webhook: it stores the reply, suppresses the number
    # (hashed) and withdraws the consent.
    stop = {
        "extend": "",
        "mobile": PHONE[3:],
        "nationcode": "86",
        "sign": "Nudge",
        "text": "TD",
        "time": 1764036000,
    }
    assert (await gateway.http.post(f"/v1/webhooks/tencent/{TOKEN}/reply", json=[stop])).status_code == 200
    return customer, workflow_id


async def test_forget_leaves_nothing_of_the_customer_and_keeps_counts_and_opt_out(gateway: Gateway) -> None:
    """After POST :forget no table holds the name, phone or city in any column; the message row is
    still counted; the hashed opt-out stays; the running journey was terminated; the erasure is
    recorded with the key's name and the person; a second erasure changes nothing more."""
    customer, workflow_id = await a_customer_with_history(gateway)
    before = await everything_stored(gateway)
    assert all(secret in before for secret in SECRETS)  # the oracle sees them

    done = await gateway.http.post(f"/v1/customers/{customer}:forget", params={"by": "dpo"})
    assert done.status_code == 200, done.text
    # Two events: the order, and the opted_out the STOP reply posted.
    assert (done.json()["messages"], done.json()["replies"], done.json()["events"], done.json()["by"]) == (
        1,
        1,
        2,
        "tests (dpo)",
    )
    assert done.json()["journeys_ended"] == 1

    stored = await everything_stored(gateway)
    for secret in SECRETS:
        assert secret not in stored, secret
    profile = (await gateway.http.get(f"/v1/customers/{customer}")).json()
    assert (profile["name"], profile["phone"], profile["attributes"]) == (None, None, {})
    assert profile["erased_at"] is not None
    async with gateway.sessions() as session:
        count = (
            await session.exec(
                select(func.count()).select_from(Message).where(Message.customer_id == customer)
            )
        ).one()
        assert count == 1
        assert await session.get(Suppression, phone_hash(PHONE)) is not None
        erasures = (await session.exec(select(Erasure).where(col(Erasure.customer_id) == customer))).all()
    assert [e.by for e in erasures] == ["tests (dpo)"]
    description = await gateway.client.get_workflow_handle(workflow_id).describe()
    assert description.status == WorkflowExecutionStatus.TERMINATED

    again = await gateway.http.post(f"/v1/customers/{customer}:forget")
    assert again.status_code == 200 and again.json()["journeys_ended"] == 0


async def test_forget_needs_admin_and_a_known_customer(gateway: Gateway) -> None:
    """An events key may not erase (403); an unknown customer is 404."""
    created = await gateway.http.post("/v1/keys", json={"name": "svc", "scopes": ["events"]})
    headers: dict[str, Any] = {"Authorization": f"Bearer {created.json()['key']}"}
    refused = await gateway.http.post("/v1/customers/anyone:forget", headers=headers)
    assert refused.status_code == 403
    assert (await gateway.http.post("/v1/customers/nobody-here:forget")).status_code == 404


async def test_cli_customers_forget_erases_after_confirmation(gateway: Gateway) -> None:
    """`nudge customers forget ID --yes --by dpo` erases and says what it cleared; without --yes a
    "no" at the prompt erases nothing."""
    from tests.api.cli import nudge

    customer, _ = await a_customer_with_history(gateway)
    declined = await nudge(gateway, "customers", "forget", customer)  # the prompt reads no input: abort
    assert declined.exit_code != 0
    assert (await gateway.http.get(f"/v1/customers/{customer}")).json()["name"] == NAME

    done = await nudge(gateway, "customers", "forget", customer, "--yes", "--by", "dpo")
    assert done.exit_code == 0, done.output
    assert f"erased {customer}: 1 messages, 1 replies and 2 events cleared; 1 journeys ended" in done.output
    assert (await gateway.http.get(f"/v1/customers/{customer}")).json()["name"] is None
