from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError

from nudge.models import MessageStatus, Profile, SendDecision
from starter.testing import JourneyTester
from workflows import Onboarding, PaymentSuccess
from workflows.keys import bucket


async def test_payment_success_sends_confirmation_at_once(journeys: JourneyTester) -> None:
    """A paid order gets its transactional confirmation without any wait, and completes on delivery."""
    run = await journeys.start(PaymentSuccess, customer="p1", order_id="o-1", amount="42.00")
    assert run.sent_templates == ["payment_success"]
    assert run.requests[0].params == {"order_id": "o-1", "amount": "42.00"}
    assert run.requests[0].category == "transactional"
    assert run.requests[0].notify_receipt is True
    assert (await run.state()).step == "wait:receipt:payment_success"
    await run.receipt(run.sent[0], MessageStatus.DELIVERED)
    result = await run.result()
    assert result.outcome == "completed"
    assert result.messages[0].status is MessageStatus.DELIVERED


async def test_payment_success_reports_an_undelivered_confirmation(journeys: JourneyTester) -> None:
    """An undelivered receipt ends the journey as undelivered:undelivered, with the message's
    status recorded, for ops to see (silence is the no_receipt test below)."""
    run = await journeys.start(PaymentSuccess, customer="p3", order_id="o-3")
    await run.receipt(run.sent[0], MessageStatus.UNDELIVERED)
    result = await run.result()
    assert (result.outcome, result.reason) == ("exited", "undelivered:undelivered")
    assert result.messages[0].status is MessageStatus.UNDELIVERED


async def test_payment_success_without_receipt_times_out(journeys: JourneyTester) -> None:
    """Silence from the carrier for the whole receipt window is reported as no_receipt."""
    run = await journeys.start(PaymentSuccess, customer="p4", order_id="o-4")
    await run.advance(minutes=31)
    result = await run.result()
    assert (result.outcome, result.reason) == ("exited", "undelivered:no_receipt")


async def test_deferred_send_sleeps_until_retry_at_then_sends(journeys: JourneyTester) -> None:
    """A provider deferral (frequency limit) parks the journey until retry_at, then the same
    message (same idempotency key) goes out; nothing is sent twice."""
    journeys.carrier.defer["payment_success"] = timedelta(hours=1)
    run = await journeys.start(PaymentSuccess, customer="p5", order_id="o-5")
    state = await run.state()
    assert state.step == "deferred:payment_success"
    assert "deferred:frequency_limit" in state.detail
    calls = [c for c in journeys.carrier.calls if c.workflow_id == run.handle.id]
    assert len(calls) == 1
    await run.advance(minutes=59)
    assert len([c for c in journeys.carrier.calls if c.workflow_id == run.handle.id]) == 1
    await run.advance(minutes=2)
    calls = [c for c in journeys.carrier.calls if c.workflow_id == run.handle.id]
    assert len(calls) == 2
    assert calls[0].idempotency_key == calls[1].idempotency_key
    assert run.sent[0].decision is SendDecision.SENT
    assert (await run.state()).step == "wait:receipt:payment_success"


async def test_onboarding_returning_customer_gets_welcome_back(journeys: JourneyTester) -> None:
    """The lifecycle stage read from the CRM picks the welcome-back branch."""
    run = await journeys.start(
        Onboarding, customer="o1", profile=Profile(customer_id="o1", lifecycle_stage="returning")
    )
    await run.advance(minutes=6)
    assert run.sent_templates == ["welcome_back"]
    state = await run.state()
    assert state.variants == {}


async def test_onboarding_new_customer_gets_split_variant(journeys: JourneyTester) -> None:
    """A new customer gets the welcome copy of their A/B bucket, and the send is attributed."""
    customer = "o2"
    expected = bucket("welcome_copy", customer, {"a": 50, "b": 50})
    run = await journeys.start(Onboarding, customer=customer)
    await run.advance(minutes=6)
    assert run.sent_templates == [f"welcome_{expected}"]
    assert run.requests[0].variant == f"welcome_copy:{expected}"
    assert (await run.state()).variants == {"welcome_copy": expected}


async def test_onboarding_order_converts(journeys: JourneyTester) -> None:
    """An order during the activation window converts the onboarding journey."""
    run = await journeys.start(Onboarding, customer="o3")
    await run.advance(days=1)
    await run.event("order_paid", order_id="x")
    assert (await run.result()).outcome == "converted"


async def test_onboarding_without_order_is_not_activated(journeys: JourneyTester) -> None:
    """Without an order in 3 days the journey ends as not_activated."""
    run = await journeys.start(Onboarding, customer="o4")
    result = await run.result()
    assert (result.outcome, result.reason) == ("exited", "not_activated")


def test_split_is_stable_and_balanced() -> None:
    """Bucketing is stable per customer and close to the weights over many customers."""
    weights = {"a": 50, "b": 50}
    assert all(bucket("x", f"c{i}", weights) == bucket("x", f"c{i}", weights) for i in range(100))
    share_a = sum(bucket("x", f"c{i}", weights) == "a" for i in range(4000)) / 4000
    assert 0.46 < share_a < 0.54
    assert bucket("x", "c1", {"a": 0, "b": 1}) == "b"
    with pytest.raises(ValueError):
        bucket("x", "c1", {"a": 0})


async def test_journey_wait_for_undeclared_event_fails_clearly(env) -> None:  # type: ignore[no-untyped-def]
    """Waiting for an event the journey did not declare fails the workflow with a clear error."""
    from starter.testing import journey_tester
    from tests.workflows.sample_journeys import WaitsForUndeclared

    async with journey_tester(env, [WaitsForUndeclared]) as tester:
        run = await tester.start(WaitsForUndeclared, customer="u1")
        with pytest.raises(WorkflowFailureError) as info:
            await run.result()
        assert "does not declare" in str(info.value.cause)


async def test_payment_success_without_receipt_wait_completes_on_send(journeys: JourneyTester) -> None:
    """With await_receipt off, the confirmation completes as soon as it is sent (no receipt signal)."""
    run = await journeys.start(PaymentSuccess, customer="p6", order_id="o-6", config={"await_receipt": False})
    result = await run.result()
    assert result.outcome == "completed"
    assert run.requests[0].notify_receipt is False


def test_transactional_journeys_do_not_listen_for_opt_outs() -> None:
    """An opt-out is about marketing: payment confirmations are not signalled with it."""
    assert "opted_out" not in PaymentSuccess.listened_events()
    assert "opted_out" in Onboarding.listened_events()
