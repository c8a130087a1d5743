"""Experiments over HTTP and ``nudge experiments``: the verdict on what ``assign_variant``
recorded, and concluding one, after which new customers get the winner."""

from __future__ import annotations

import json
import uuid

from activities.experiments import ExperimentActivities
from nudge.experiments import VariantRequest
from nudge.store import Click, Message
from tests.api.cli import nudge
from tests.api.conftest import Gateway


async def _experiment(
    gateway: Gateway, clicks: dict[str, int], *, customers: int = 40
) -> tuple[str, dict[str, int]]:
    """An experiment whose customers were placed by ``assign_variant``; the first ``clicks[v]``
    customers of each variant click their message. Returns the name and the exposures."""
    name = f"x{uuid.uuid4().hex[:8]}"
    activities = ExperimentActivities(gateway.sessions)
    exposed: dict[str, int] = {"a": 0, "b": 0}
    async with gateway.sessions() as session:
        for i in range(customers):
            customer = f"{name}-c{i}"
            request = VariantRequest(
                experiment=name, customer_id=customer, workflow_id=f"w-{customer}", journey="onboarding",
                weights={"a": 1, "b": 1},
            )  # fmt: skip
            variant = (await activities.assign_variant(request)).variant
            clicked = exposed[variant] < clicks[variant]
            if clicked:
                session.add(Click(code=f"c-{customer}", message_id=f"m-{customer}"))
            session.add(
                Message(
                    id=f"m-{customer}", idempotency_key=f"k-{customer}", workflow_id=f"w-{customer}",
                    journey="onboarding",
                    step="send:welcome", customer_id=customer, template="welcome", category="marketing",
                    variant=f"{name}:{variant}", status="delivered", clicked=clicked,
                )
            )  # fmt: skip
            exposed[variant] += 1
        await session.commit()
    return name, exposed


async def test_the_verdict_counts_what_was_assigned_and_clicked(gateway: Gateway) -> None:
    """Exposures are the assignments, successes the customers who clicked; the list shows the
    experiment; ``nudge experiments show --json`` is the API's answer and the table says it in words."""
    name, exposed = await _experiment(gateway, {"a": 2, "b": 9})
    listed = (await gateway.http.get("/v1/experiments")).json()
    assert [(e["journey"], e["mode"], e["variants"]) for e in listed if e["name"] == name] == [
        ("onboarding", "fixed", ["a", "b"])
    ]
    report = (await gateway.http.get(f"/v1/experiments/{name}")).json()
    figures = {v["variant"]: (v["successes"], v["exposures"]) for v in report["verdict"]["variants"]}
    assert figures == {"a": (min(2, exposed["a"]), exposed["a"]), "b": (min(9, exposed["b"]), exposed["b"])}
    assert report["allocation"] == {"a": 0.5, "b": 0.5} and report["verdict"]["conclusive"] is False
    assert "needs about" in report["verdict"]["summary"]

    as_json = await nudge(gateway, "experiments", "show", name, "--json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == report
    table = await nudge(gateway, "experiments", "show", name)
    assert table.exit_code == 0 and report["verdict"]["summary"] in table.output.replace("\n", " ")
    assert (await gateway.http.get("/v1/experiments/nope")).status_code == 404


async def test_concluding_sends_new_customers_to_the_winner(gateway: Gateway) -> None:
    """``nudge experiments conclude --winner b`` records who and when; new customers then get b;
    concluding again is refused (409, exit 2), and so is a variant it does not have (422)."""
    name, _ = await _experiment(gateway, {"a": 1, "b": 1}, customers=4)
    done = await nudge(gateway, "experiments", "conclude", name, "--winner", "b", "--by", "alice")
    assert done.exit_code == 0, done.output
    assert f"concluded {name}: every new customer gets b (by tests (alice))" in done.output
    activities = ExperimentActivities(gateway.sessions)
    for i in range(6):
        request = VariantRequest(
            experiment=name, customer_id=f"{name}-new{i}", workflow_id="w", journey="onboarding",
            weights={"a": 1, "b": 1},
        )  # fmt: skip
        assert (await activities.assign_variant(request)).variant == "b"
    again = await nudge(gateway, "experiments", "conclude", name, "--winner", "a")
    assert again.exit_code == 2 and "was concluded with 'b'" in again.output
    other, _ = await _experiment(gateway, {"a": 0, "b": 0}, customers=2)
    wrong = await gateway.http.post(f"/v1/experiments/{other}:conclude", json={"winner": "z"})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "winner"]
    assert (await gateway.http.post("/v1/experiments/nope:conclude", json={"winner": "a"})).status_code == 404
