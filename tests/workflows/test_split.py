"""``Journey.split`` on the time-skipping server: the assignment goes through ``assign_variant``
(so it is recorded), the sends after it are attributed to the variant, and a concluded
experiment's winner overrides the weights."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from starter.testing import JourneyTester, journey_tester
from tests.workflows.sample_journeys import SplitsCopy

# Pinned: the first 8 bytes of sha256("welcome_copy:<customer>") over 2^64 are 0.418, 0.869,
# 0.219 and 0.503: under 0.5 is a.
EXPECTED = {"s1": "a", "s2": "b", "s3": "a", "s7": "b"}


@pytest.fixture
async def tester(env: WorkflowEnvironment) -> AsyncIterator[JourneyTester]:
    async with journey_tester(env, [SplitsCopy]) as tester:
        yield tester


async def test_split_asks_assign_variant_and_attributes_the_sends(tester: JourneyTester) -> None:
    """Each customer's variant is the declared bucket, asked of ``assign_variant`` with the
    experiment, weights and workflow id; every later send carries ``welcome_copy:<variant>``."""
    for customer, variant in EXPECTED.items():
        run = await tester.start(SplitsCopy, customer=customer)
        await run.result()
        assert run.sent_templates == [f"welcome_{variant}", "welcome_follow_up"], customer
        assert {r.variant for r in run.requests} == {f"welcome_copy:{variant}"}
        assert (await run.state()).variants == {"welcome_copy": variant}
    asked = tester.carrier.assignments
    assert [(a.experiment, a.customer_id, a.weights, a.bandit) for a in asked] == [
        ("welcome_copy", c, {"a": 0.5, "b": 0.5}, False) for c in EXPECTED
    ]
    assert asked[0].workflow_id == SplitsCopy.workflow_id("s1") and asked[0].journey == "splits_copy"


async def test_a_concluded_experiment_sends_everyone_to_its_winner(tester: JourneyTester) -> None:
    """With the winner set to b, customers the weights would put in a get b too; the journey's
    ``bandit=True`` reaches ``assign_variant`` (the activity's own tests judge the bandit)."""
    tester.carrier.winners["welcome_copy"] = "b"
    for customer in ("s1", "s3"):
        run = await tester.start(SplitsCopy, customer=customer, bandit=True)
        await run.result()
        assert run.sent_templates[0] == "welcome_b"
    assert [a.bandit for a in tester.carrier.assignments] == [True, True]


async def test_a_split_the_store_cannot_record_falls_back_to_the_declared_bucket(
    tester: JourneyTester,
) -> None:
    """When ``assign_variant`` fails for good, the customer gets the declared bucket and the
    journey goes on to its sends, instead of failing."""
    tester.carrier.assignments_fail = True
    run = await tester.start(SplitsCopy, customer="s2")
    result = await run.result()
    assert result.outcome == "completed" and run.sent_templates == ["welcome_b", "welcome_follow_up"]
