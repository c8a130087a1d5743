"""Record journey histories for the replay test: ``python -m tests.workflows.record_histories [NAME...]``.

With names, only those histories are (re)recorded; the others are left as they are. Keep the
histories of older journey versions: they prove that ``workflow.patched`` guards still replay
(``payment_success__sent`` predates the receipt wait, for example). Re-record one only when a
journey changes *on purpose* in a way that old runs need not replay.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from nudge.models import MessageStatus, Profile
from starter.testing import JourneyRun, JourneyTester, journey_tester, time_skipping_environment
from tests.workflows.sample_journeys import SplitsCopy
from workflows import JOURNEYS, CartAbandonment, Onboarding, PaymentSuccess

OUT = Path(__file__).parent / "histories"
RECORDING_KEYS = "recorded-1:" + base64.b64encode(bytes(range(32))).decode()
"""The codec key histories are recorded with (a fixed one, in the open: test data only), so that
the replay test can open the payloads of a history sealed by the codec."""


async def cart_clicked_then_converted(tester: JourneyTester) -> JourneyRun:
    customer = f"h1-{uuid.uuid4().hex[:4]}"  # the same recorder runs twice in one session
    run = await tester.start(
        CartAbandonment, customer=customer, cart_id="k1", profile=Profile(customer_id=customer, name="Ada")
    )
    await run.advance(hours=1)
    await run.click(run.sent[-1])
    await run.advance(hours=3)
    await run.event("order_paid")
    return run


async def cart_no_reaction(tester: JourneyTester) -> JourneyRun:
    return await tester.start(CartAbandonment, customer="h2", cart_id="k2")


async def payment_delivered(tester: JourneyTester) -> JourneyRun:
    run = await tester.start(
        PaymentSuccess, customer=f"h5-{uuid.uuid4().hex[:4]}", order_id="o5", amount="9.90"
    )
    await run.receipt(run.sent[0], MessageStatus.DELIVERED)
    return run


async def payment_deferred_then_delivered(tester: JourneyTester) -> JourneyRun:
    tester.carrier.defer["payment_success"] = timedelta(minutes=1)
    run = await tester.start(PaymentSuccess, customer="h6", order_id="o6", amount="9.90")
    await run.advance(minutes=2)
    await run.receipt(run.sent[0], MessageStatus.DELIVERED)
    tester.carrier.defer.clear()
    return run


async def splits_copy_assigned(tester: JourneyTester) -> JourneyRun:
    return await tester.start(SplitsCopy, customer="s2")


async def onboarding_new_customer(tester: JourneyTester) -> JourneyRun:
    return await tester.start(Onboarding, customer=f"h4-{uuid.uuid4().hex[:4]}")


RECORDERS: dict[str, Callable[[JourneyTester], Awaitable[JourneyRun]]] = {
    "cart_abandonment__clicked_then_converted": cart_clicked_then_converted,
    "cart_abandonment__no_reaction": cart_no_reaction,
    "payment_success__delivered": payment_delivered,
    "payment_success__deferred_then_delivered": payment_deferred_then_delivered,
    "onboarding__new_customer": onboarding_new_customer,
    # Recorded after the lean-search-attributes patch (transient steps no longer upserted).
    "cart_abandonment__clicked_then_converted_lean": cart_clicked_then_converted,
    "payment_success__delivered_lean": payment_delivered,
    "onboarding__new_customer_lean": onboarding_new_customer,
    # Recorded after the local-send patch (the send is a local activity).
    "cart_abandonment__clicked_then_converted_local_send": cart_clicked_then_converted,
    "payment_success__deferred_then_delivered_local_send": payment_deferred_then_delivered,
    "onboarding__new_customer_local_send": onboarding_new_customer,
    # After the experiment-assignment patch (split asks assign_variant); a test journey's.
    "splits_copy__assigned": splits_copy_assigned,
    "onboarding__new_customer_assigned": onboarding_new_customer,
}


async def main(names: list[str]) -> None:
    unknown = set(names) - RECORDERS.keys()
    if unknown:
        raise SystemExit(f"unknown history {sorted(unknown)}; known: {', '.join(RECORDERS)}")
    async with (
        time_skipping_environment(codec_keys=RECORDING_KEYS) as env,
        journey_tester(env, [*JOURNEYS, SplitsCopy]) as tester,
    ):
        for name in names or list(RECORDERS):
            run = await RECORDERS[name](tester)
            await run.result()
            history = await run.handle.fetch_history()
            (OUT / f"{name}.json").write_text(history.to_json())
            print(f"recorded {name}: {len(history.events)} events")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
