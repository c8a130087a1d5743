"""The simulated customer: whether they click a message's links, and how (as a person's browser
does, so that the gateway counts the click)."""

from __future__ import annotations

import re

import httpx

from nudge.logging import get_logger
from nudge.phone import mask
from simulator.config import SimConfig
from simulator.ledger import LedgerEntry

log = get_logger("simulator")
HANDSET_BROWSER = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
"""The simulated customer's browser (a person's user agent: the gateway does not count a bot's click)."""
_LINK = re.compile(r"https?://\S+/l/[A-Za-z0-9_\-]+")
CLICK_TIMEOUT_S = 30.0


def click_rate(config: SimConfig, body: str) -> float:
    """How likely the simulated customer is to click the links of a message that reads ``body``."""
    for text, rate in config.click_rates_by_text.items():
        if text in body:
            return rate
    return config.click_rate


async def follow_links(client: httpx.AsyncClient, entry: LedgerEntry) -> None:
    """Open every short link in the message; a redirect counts as clicked (``entry.clicked``)."""
    for url in _LINK.findall(entry.body):
        try:
            # A person's browser waits half a minute for a slow page, not the callbacks' 10 s.
            response = await client.get(
                url, follow_redirects=False, headers={"user-agent": HANDSET_BROWSER}, timeout=CLICK_TIMEOUT_S
            )
            if response.status_code in (301, 302, 303, 307):
                entry.clicked.append(url)
                log.info("link_clicked", message_id=entry.id, to=mask(entry.to))
        except httpx.HTTPError as exc:
            log.warning("click_failed", message_id=entry.id, error=str(exc))
