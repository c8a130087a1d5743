"""The simulated customer's click rate per wording: one variant's copy can draw more clicks."""

from __future__ import annotations

from nudge.store import utcnow
from simulator.carrier import Carrier
from simulator.config import SimConfig
from simulator.ledger import LedgerEntry


def _entry(body: str) -> LedgerEntry:
    return LedgerEntry(
        id="m",
        client_ref="",
        to="+8613800138000",
        sender="Nudge",
        body=body,
        segments=1,
        received_at=utcnow(),
    )


async def test_the_first_wording_found_sets_the_click_rate() -> None:
    """A body with "Welcome aboard" clicks at 0.6, one with "Hello" at 0.1, others at click_rate."""
    config = SimConfig(click_rate=0.02, click_rates_by_text={"Welcome aboard": 0.6, "Hello": 0.1})
    carrier = Carrier(config)
    try:
        assert carrier.click_rate(_entry("Welcome aboard, Ada")) == 0.6
        assert carrier.click_rate(_entry("Hello Ada")) == 0.1
        assert carrier.click_rate(_entry("Your code is 1234")) == 0.02
    finally:
        await carrier.close()
