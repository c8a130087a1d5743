from __future__ import annotations

import asyncio
from datetime import timedelta

from nudge.models import Event, Profile, SendDecision
from starter.testing import JourneyTester
from workflows import CartAbandonment


async def test_cart_abandonment_converted_before_reminder(journeys: JourneyTester) -> None:
    """order_paid during the first wait ends the journey as converted, with nothing sent."""
    run = await journeys.start(CartAbandonment, customer="c1", cart_id="k1")
    await run.advance(minutes=30)
    await run.event("order_paid", order_id="o1")
    result = await run.result()
    assert result.outcome == "converted"
    assert run.sent_templates == []


async def test_cart_abandonment_click_without_purchase_earns_coupon(journeys: JourneyTester) -> None:
    """A click on the reminder, with no purchase, leads to the coupon 2 h later."""
    run = await journeys.start(
        CartAbandonment,
        customer="c2",
        cart_id="k2",
        url="https://shop.example.com/cart/k2",
        profile=Profile(customer_id="c2", name="Ada"),
    )
    await run.advance(hours=1)
    assert run.sent_templates == ["cart_reminder"]
    assert run.requests[0].params == {"name": "Ada", "cart_url": "https://shop.example.com/cart/k2"}
    await run.click(run.sent[-1])
    await run.advance(hours=1)
    assert run.sent_templates == ["cart_reminder"]
    await run.advance(hours=1, minutes=1)
    assert run.sent_templates == ["cart_reminder", "cart_coupon"]
    result = await run.result()
    assert (result.outcome, result.reason) == ("exited", "no_purchase")
    assert result.messages[0].clicked is True


async def test_cart_abandonment_no_reaction_exits(journeys: JourneyTester) -> None:
    """No click within 24 h ends the journey with reason no_reaction and no coupon."""
    run = await journeys.start(CartAbandonment, customer="c3", cart_id="k3")
    result = await run.result()
    assert (result.outcome, result.reason) == ("exited", "no_reaction")
    assert run.sent_templates == ["cart_reminder"]
    assert result.duration is not None and result.duration.total_seconds() >= 25 * 3600


async def test_cart_abandonment_purchase_after_coupon_is_converted(journeys: JourneyTester) -> None:
    """order_paid after the coupon is the goal: the journey converts."""
    run = await journeys.start(CartAbandonment, customer="c4", cart_id="k4")
    await run.advance(hours=1)
    await run.click(run.sent[-1])
    await run.advance(hours=3)
    await run.event("order_paid")
    result = await run.result()
    assert result.outcome == "converted"
    assert run.sent_templates == ["cart_reminder", "cart_coupon"]


async def test_cart_abandonment_blocked_send_exits_with_reason(journeys: JourneyTester) -> None:
    """A reminder the gate refuses ends the journey with the gate's reason."""
    journeys.carrier.block["cart_reminder"] = "no_phone"
    run = await journeys.start(CartAbandonment, customer="c5", cart_id="k5")
    result = await run.result()
    assert (result.outcome, result.reason) == ("exited", "not_sent:no_phone")


async def test_cart_abandonment_capped_reminder_is_recorded_and_ends_the_journey(
    journeys: JourneyTester,
) -> None:
    """A frequency cap refusing the reminder: the journey learns it was capped, ends with the
    cap's reason, and its messages record the decision."""
    journeys.carrier.block["cart_reminder"] = "capped:2/24h per customer"
    run = await journeys.start(CartAbandonment, customer="c5c", cart_id="k5")
    result = await run.result()
    assert (result.outcome, result.reason) == ("exited", "not_sent:capped:2/24h per customer")
    [message] = result.messages
    assert (message.decision, message.reason) == (SendDecision.CAPPED, "capped:2/24h per customer")


async def test_cart_abandonment_state_query_shows_step(journeys: JourneyTester) -> None:
    """The state query reports the current step, the events seen and the messages."""
    run = await journeys.start(CartAbandonment, customer="c6", cart_id="k6")
    state = await run.state()
    assert state.step == "sleep" and "sleeping 1 h" in state.detail
    assert state.events_seen == ["cart_abandoned"]
    await run.advance(hours=1)
    state = await run.state()
    assert state.step == "wait:click:cart_reminder"
    assert [m.template for m in state.messages] == ["cart_reminder"]


async def test_cart_abandonment_duplicate_trigger_is_ignored(journeys: JourneyTester) -> None:
    """A second cart_abandoned for the running cart does not restart or double-send."""
    run = await journeys.start(CartAbandonment, customer="c7", cart_id="k7")
    await run.event("cart_abandoned", cart_id="k7")
    await run.advance(hours=1)
    assert run.sent_templates == ["cart_reminder"]


async def test_cart_abandonment_config_override_shrinks_delays(journeys: JourneyTester) -> None:
    """Delays are config: a 10 s first wait sends the reminder after 10 s."""
    run = await journeys.start(CartAbandonment, customer="c8", cart_id="k8", config={"first_wait": "PT10S"})
    await run.advance(seconds=11)
    assert run.sent_templates == ["cart_reminder"]


async def test_opted_out_event_ends_marketing_journey(journeys: JourneyTester) -> None:
    """A STOP reply reaches a waiting marketing journey as opted_out: it exits at once."""
    run = await journeys.start(CartAbandonment, customer="stop1", cart_id="k1")
    await run.advance(hours=1)
    assert run.sent_templates == ["cart_reminder"]
    await run.event("opted_out")
    result = await run.result()
    assert (result.outcome, result.reason) == ("exited", "opted_out")
    assert "opted_out" in CartAbandonment.listened_events()


async def test_goal_during_a_send_converts_instead_of_failing(journeys: JourneyTester) -> None:
    """A goal that arrives while a send is still in flight ends the journey as converted.

    (On the real server the cancelled send can surface as an ActivityError; the e2e opt-out test
    covers that path.)"""
    gate = asyncio.Event()
    journeys.carrier.hold = gate  # the reminder stays in flight until released below
    run = await journeys.start(CartAbandonment, customer="busy1", cart_id="k1")
    # Not run.advance: its state query would wait for the workflow task the send runs in.
    await journeys.env.sleep(timedelta(hours=1))
    for _ in range(250):
        if journeys.carrier.in_flight:
            break
        await asyncio.sleep(0.02)
    assert journeys.carrier.in_flight, "the reminder never went in flight"
    await run.handle.signal(
        "event",
        Event(event_id="paid-1", customer_id="busy1", name="order_paid", properties={}),
    )
    gate.set()
    result = await run.result()
    assert (result.outcome, result.reason) == ("converted", "order_paid")
