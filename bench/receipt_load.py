"""The cases of ``bench.receipts``: the messages each seeds, the requests its load generator sends
(built by the carrier simulator's own receipt builders, so every byte is in the provider's format),
and the load generator itself, which runs in a process of its own.

Every tenth message ends undelivered (with the provider's failure code), the rest delivered, so
that the counts afterwards check both outcomes.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nudge.routes import DEV_TWILIO_ACCOUNTS, DEV_TWILIO_NUMBER
from nudge.settings import DEV_CALLBACK_TOKEN
from simulator import aliyun, native, tencent, twilio
from simulator.callbacks import Callback
from simulator.config import SimConfig
from simulator.customer import HANDSET_BROWSER
from simulator.ledger import LedgerEntry

((TWILIO_SID, _),) = DEV_TWILIO_ACCOUNTS.items()
ALIYUN_BATCH = 100
"""SendBatchSms takes 100 numbers under one BizId and one OutId (the first message's id)."""


@dataclass(frozen=True)
class Case:
    name: str
    provider: str
    """The messages' provider (``aliyun``...), or ``link`` for clicks."""
    per_request: int = 1
    """Receipts in one request (Aliyun and Tencent push arrays)."""
    broadcast: bool = True
    """The messages are a broadcast's (never signalled), else a journey's."""
    batch_sent: bool = False
    """Aliyun: the messages went out through SendBatchSms (a BizId shared by 100 numbers)."""

    @property
    def clicks(self) -> bool:
        return self.provider == "link"

    def receipts_per_message(self) -> int:
        return 2 if self.provider == "twilio" else 1  # Twilio posts ``sent``, then the final status


CASES = {
    case.name: case
    for case in (
        Case("aliyun-1", "aliyun"),
        Case("aliyun-50", "aliyun", per_request=50, batch_sent=True),
        Case("tencent-50", "tencent", per_request=50),
        Case("twilio", "twilio"),
        Case("simulator", "simulator"),
        Case("clicks", "link"),
        Case("clicks-journey", "link", broadcast=False),
    )
}


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: bytes
    headers: dict[str, str]


def undelivered(index: int) -> bool:
    return index % 10 == 9


def _number(case: Case, index: int) -> str:
    return f"+1415{index:07d}" if case.provider == "twilio" else f"+86138{index:08d}"


def _provider_id(case: Case, tag: str, index: int) -> str:
    if case.provider == "aliyun":
        return f"{tag}{index // ALIYUN_BATCH if case.batch_sent else index:09d}^0"
    if case.provider == "twilio":
        return f"SM{tag}{index:024d}"
    if case.provider == "tencent":
        return f"2433:{tag}{index:012d}"
    return f"SIM{tag}{index:012d}"


def message_rows(case: Case, tag: str, count: int) -> Iterator[dict[str, Any]]:
    """The message rows to bulk-insert: submitted, or for clicks delivered a minute ago (a click
    sooner than a second after delivery is a scanner's)."""
    now = datetime.now(UTC)
    delivered = now - timedelta(minutes=1)
    for index in range(count):
        owner = f"bench-{tag}" if case.broadcast else None
        workflow_id = f"broadcast:bench-{tag}" if case.broadcast else f"journey:bench:c{tag}{index}:k"
        yield {
            "id": f"{tag}{index:010d}",
            "idempotency_key": f"bench/{tag}/{index}",
            "workflow_id": workflow_id,
            "journey": "broadcast" if case.broadcast else "bench",
            "step": "send",
            "customer_id": f"c{tag}{index}",
            "template": "bench",
            "category": "marketing",
            "to": _number(case, index),
            "body": "bench",
            "segments": 1,
            "provider": None if case.clicks else case.provider,
            "provider_message_id": None if case.clicks else _provider_id(case, tag, index),
            "status": "delivered" if case.clicks else "submitted",
            "notify_receipt": False,
            "clicked": False,
            "route": None if case.clicks else f"{case.provider}-bench",
            "delivered_at": delivered if case.clicks else None,
            "broadcast_id": owner,
            "created_at": delivered if case.clicks else now,
            "updated_at": delivered if case.clicks else now,
        }


def link_rows(case: Case, tag: str, count: int) -> Iterator[dict[str, Any]]:
    if case.clicks:
        for index in range(count):
            yield {
                "code": f"{tag}{index:07d}",
                "message_id": f"{tag}{index:010d}",
                "target_url": "https://shop.example.com/p",
                "created_at": datetime.now(UTC),
            }


def requests(case: Case, tag: str, count: int, gateway: str) -> list[Request]:
    """What the load generator sends, in order: each provider's receipts as the simulator builds
    them (Aliyun and Tencent items regrouped into arrays of ``per_request``), or one GET per link."""
    if case.clicks:
        return [
            Request("GET", f"{gateway}/l/{tag}{i:07d}", b"", {"user-agent": HANDSET_BROWSER})
            for i in range(count)
        ]
    config = SimConfig(
        aliyun_report_url=f"{gateway}/v1/webhooks/aliyun/{DEV_CALLBACK_TOKEN}/report",
        tencent_report_url=f"{gateway}/v1/webhooks/tencent/{DEV_CALLBACK_TOKEN}/report",
    )
    callbacks: list[Callback] = []
    now = datetime.now(UTC)
    for index in range(count):
        first = index - index % ALIYUN_BATCH if case.batch_sent else index
        entry = LedgerEntry(
            id=_provider_id(case, tag, index),
            client_ref="" if case.provider == "twilio" else f"{tag}{first:010d}",
            to=_number(case, index),
            sender=DEV_TWILIO_NUMBER,
            body="bench",
            segments=1,
            received_at=now,
            status="undelivered" if undelivered(index) else "delivered",
            provider=case.provider if case.provider != "simulator" else "native",  # type: ignore[arg-type]
            account=TWILIO_SID,
            provider_id=_provider_id(case, tag, index),
            status_callback=(
                f"{gateway}/v1/webhooks/twilio/status"
                if case.provider == "twilio"
                else f"{gateway}/v1/webhooks/simulator/status"
            ),
            reported_at=now,
        )
        builder = {"aliyun": aliyun, "tencent": tencent, "twilio": twilio, "simulator": native}[case.provider]
        callbacks += builder.receipts(entry, config)
    if case.per_request > 1:
        items = [item for callback in callbacks for item in json.loads(callback.content)]
        url = callbacks[0].url
        callbacks = [
            Callback.json(url, items[start : start + case.per_request])
            for start in range(0, len(items), case.per_request)
        ]
    return [Request("POST", c.url, c.content, c.headers) for c in callbacks]


def run_load(plan: list[Request], concurrency: int, results: Any) -> None:
    """The load generator's process: send ``plan`` at full speed, ``concurrency`` at a time, and put
    its figures on the ``results`` queue."""
    import uvloop

    results.put(uvloop.run(_load(plan, concurrency)))


async def _load(plan: list[Request], concurrency: int) -> dict[str, Any]:
    import aiohttp

    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    position = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def sender() -> None:
            nonlocal position
            while position < len(plan):
                request = plan[position]
                position += 1
                sent = time.perf_counter()
                try:
                    async with http.request(
                        request.method,
                        request.url,
                        data=request.body or None,
                        headers=request.headers,
                        allow_redirects=False,
                    ) as response:
                        await response.read()
                        statuses[str(response.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    statuses[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - sent)

        cpu = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()
    return {
        "requests": len(plan),
        "elapsed_s": elapsed,
        "statuses": dict(statuses),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "load_cpu_s": (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime),
    }
