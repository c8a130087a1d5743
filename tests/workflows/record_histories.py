"""Record journey histories for the replay test: ``python -m tests.workflows.record_histories``.

Run it only when a journey changes *on purpose* in a way that old runs need not replay (a new
journey, or after every old run has finished); otherwise guard the change with ``workflow.patched``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from nudge.models import Profile
from nudge.testing import journey_tester, time_skipping_environment
from workflows import JOURNEYS, CartAbandonment, Onboarding, PaymentSuccess

OUT = Path(__file__).parent / "histories"


async def main() -> None:
    async with time_skipping_environment() as env, journey_tester(env, JOURNEYS) as tester:
        runs = {}
        run = await tester.start(
            CartAbandonment, customer="h1", cart_id="k1", profile=Profile(customer_id="h1", name="Ada")
        )
        await run.advance(hours=1)
        await run.click(run.sent[-1])
        await run.advance(hours=3)
        await run.event("order_paid")
        runs["cart_abandonment__clicked_then_converted"] = run
        runs["cart_abandonment__no_reaction"] = await tester.start(
            CartAbandonment, customer="h2", cart_id="k2"
        )
        runs["payment_success__sent"] = await tester.start(
            PaymentSuccess, customer="h3", order_id="o1", amount="9.90"
        )
        runs["onboarding__new_customer"] = await tester.start(Onboarding, customer="h4")
        for name, run in runs.items():
            await run.result()
            history = await run.handle.fetch_history()
            (OUT / f"{name}.json").write_text(history.to_json())
            print(f"recorded {name}: {len(history.events)} events")


if __name__ == "__main__":
    asyncio.run(main())
