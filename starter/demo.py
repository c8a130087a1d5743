"""The demo: seven customers walk through the three example journeys against the local stack.

It posts real events to the gateway; the simulator plays the customers who click. It then waits
for every journey to end and checks each against the end state it should reach.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from temporalio.client import Client, WorkflowExecutionStatus

from nudge.models import JourneyResult, SendDecision
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.templates import builtin_templates
from starter.csv_customers import customer_record
from workflows import CartAbandonment, Onboarding, PaymentSuccess

DEMO_OVERRIDES: dict[str, dict[str, Any]] = {
    CartAbandonment.name: {
        "first_wait": "PT3S",
        "click_window": "PT5S",
        "coupon_delay": "PT1S",
        "conversion_window": "PT5S",
    },
    Onboarding.name: {"welcome_delay": "PT1S", "activation_window": "PT4S"},
    PaymentSuccess.name: {"receipt_window": "PT20S"},
}
"""Journey delays shrunk to seconds: the same journeys, configured, not patched."""

PLAYGROUND_ENV: dict[str, str] = {
    "NUDGE_JOURNEY_OVERRIDES": json.dumps(DEMO_OVERRIDES),
    # A playground runs at any hour: quiet hours would park its marketing messages until morning.
    "NUDGE_QUIET_HOURS": json.dumps({k: v.model_dump(mode="json") for k, v in ALWAYS_OPEN.items()}),
}
"""The environment ``nudge up`` and ``nudge demo`` give the stack."""


@dataclass(frozen=True)
class Expectation:
    customer: str
    journey: str
    workflow_id: str
    outcome: str
    reason: str | None
    story: str


@dataclass(frozen=True)
class Row:
    expectation: Expectation
    status: str
    outcome: str | None
    reason: str | None
    sent: list[str]

    @property
    def ok(self) -> bool:
        e = self.expectation
        return self.status == "COMPLETED" and (self.outcome, self.reason) == (e.outcome, e.reason)


COUPON_CODES = {
    code for t in builtin_templates() if t.code == "cart_coupon" for code in t.provider_codes.values()
}
"""The coupon template's console codes, in every language: how the demo spots it in the ledger."""


def demo_customers(tag: str) -> list[dict[str, Any]]:
    text = resources.files("starter").joinpath("demo_customers.csv").read_text(encoding="utf-8")
    rows = [customer_record(raw) for raw in csv.DictReader(text.splitlines())]
    for row in rows:
        row["id"] = f"{row['id']}-{tag}"
    return rows


async def run_demo(
    *,
    gateway_url: str,
    api_key: str,
    simulator_url: str,
    client: Client,
    console: Console,
    timeout: float = 120,
) -> list[Row]:
    """Play the demo with ``api_key`` (an admin key: it reads profiles back); return one row per
    journey with its actual and expected end state."""
    tag = uuid.uuid4().hex[:6]
    customers = {row["id"].rsplit("-", 1)[0]: row for row in demo_customers(tag)}
    ids = {short: row["id"] for short, row in customers.items()}
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30, headers=headers) as http:
        response = await http.post("/v1/customers:batch", json={"customers": list(customers.values())})
        response.raise_for_status()
        phones = {
            short: (await http.get(f"/v1/customers/{cid}")).json()["phone"] for short, cid in ids.items()
        }
        async with httpx.AsyncClient(base_url=simulator_url, timeout=10) as sim:
            await sim.post(
                "/_sim/config",
                json={"click_numbers": [phones["ada"], phones["dee"]], "click_delay_ms": 1200},
            )

        async def event(short: str, name: str, **props: Any) -> None:
            body = {
                "event_id": uuid.uuid4().hex,
                "customer_id": ids[short],
                "name": name,
                "properties": props,
            }
            (await http.post("/v1/events", json=body)).raise_for_status()
            console.log(f"event [bold]{name}[/] for {ids[short]}")

        cart = {short: f"cart-{short}-{tag}" for short in ("ada", "bo", "cy", "dee", "gus")}
        for short in cart:
            await event(
                short,
                "cart_abandoned",
                cart_id=cart[short],
                url=f"https://shop.example.com/cart/{cart[short]}",
            )
        await event("eve", "signed_up")
        await event("fay", "signed_up")
        await asyncio.sleep(1)
        await event("bo", "order_paid", order_id=f"o-bo-{tag}", amount="19.90")

        # dee buys after the coupon arrives: wait for it in the carrier's ledger.
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=simulator_url, timeout=10) as sim:
            while time.monotonic() < deadline:
                ledger = (await sim.get("/_sim/ledger")).json()
                if any(m["to"] == phones["dee"] and m.get("template_code") in COUPON_CODES for m in ledger):
                    break
                await asyncio.sleep(0.3)
        await event("dee", "order_paid", order_id=f"o-dee-{tag}", amount="59.00")

    expectations = [
        Expectation(
            "ada",
            CartAbandonment.name,
            CartAbandonment.workflow_id(ids["ada"], cart["ada"]),
            "exited",
            "no_purchase",
            "clicked, got the coupon, did not buy",
        ),
        Expectation(
            "bo",
            CartAbandonment.name,
            CartAbandonment.workflow_id(ids["bo"], cart["bo"]),
            "converted",
            "order_paid",
            "paid before the reminder",
        ),
        Expectation(
            "cy",
            CartAbandonment.name,
            CartAbandonment.workflow_id(ids["cy"], cart["cy"]),
            "exited",
            "no_reaction",
            "ignored the reminder",
        ),
        Expectation(
            "dee",
            CartAbandonment.name,
            CartAbandonment.workflow_id(ids["dee"], cart["dee"]),
            "converted",
            "order_paid",
            "clicked, got the coupon, bought",
        ),
        Expectation(
            "gus",
            CartAbandonment.name,
            CartAbandonment.workflow_id(ids["gus"], cart["gus"]),
            "exited",
            "not_sent:no_consent",
            "never consented: the gate holds the reminder",
        ),
        Expectation(
            "bo",
            PaymentSuccess.name,
            PaymentSuccess.workflow_id(ids["bo"], f"o-bo-{tag}"),
            "completed",
            None,
            "payment confirmation",
        ),
        Expectation(
            "dee",
            PaymentSuccess.name,
            PaymentSuccess.workflow_id(ids["dee"], f"o-dee-{tag}"),
            "completed",
            None,
            "payment confirmation",
        ),
        Expectation(
            "eve",
            Onboarding.name,
            Onboarding.workflow_id(ids["eve"]),
            "exited",
            "not_activated",
            "new: A/B welcome",
        ),
        Expectation(
            "fay",
            Onboarding.name,
            Onboarding.workflow_id(ids["fay"]),
            "exited",
            "not_activated",
            "returning: welcome back",
        ),
    ]
    expectations = [
        Expectation(ids[e.customer], e.journey, e.workflow_id, e.outcome, e.reason, e.story)
        for e in expectations
    ]
    return [await _await_end(client, e, deadline) for e in expectations]


async def _await_end(client: Client, expectation: Expectation, deadline: float) -> Row:
    handle = client.get_workflow_handle(expectation.workflow_id, result_type=JourneyResult)
    while True:
        description = await handle.describe()
        if description.status != WorkflowExecutionStatus.RUNNING or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    status = description.status.name if description.status else "UNKNOWN"
    if description.status == WorkflowExecutionStatus.COMPLETED:
        result = await handle.result()
        sent = [
            f"{m.template} ({m.route})" if m.decision is SendDecision.SENT else f"{m.template}: {m.reason}"
            for m in result.messages
        ]
        return Row(expectation, status, result.outcome, result.reason, sent)
    return Row(expectation, status, None, None, [])


def summary_table(rows: list[Row]) -> Table:
    table = Table(title="Demo journeys", show_lines=False)
    for column in ("customer", "journey", "story", "messages", "outcome", "expected", ""):
        table.add_column(column)
    for row in rows:
        e = row.expectation
        got = f"{row.outcome or row.status.lower()}" + (f" ({row.reason})" if row.reason else "")
        want = e.outcome + (f" ({e.reason})" if e.reason else "")
        table.add_row(
            e.customer,
            e.journey,
            e.story,
            ", ".join(row.sent) or "-",
            got,
            want,
            "[green]ok[/]" if row.ok else "[red]MISMATCH[/]",
        )
    return table
