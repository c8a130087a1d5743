"""Receipts pushed in arrays (``receipt_batch``), as Aliyun's HTTP batch push sends them: every
receipt arrives once, no array is over the size, a lone receipt still goes after the linger, an
array the receiver refused is posted again whole, and a reset forgets the arrays still open."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.polling import wait_until
from tests.simulator.conftest import Receiver, Sim
from tests.simulator.signed import aliyun_send

NUMBERS = [f"1380013{i:04d}" for i in range(25)]


def items(receiver: Receiver) -> list[dict[str, Any]]:
    return [item for report in receiver.at("/aliyun/report") for item in report.json()]


async def all_posted(sim: Sim) -> list[dict[str, Any]]:
    """The ledger once every entry counts its receipt as posted (it moves just after the post)."""
    for _ in range(100):
        entries = await sim.ledger()
        if all(e["receipts_posted"] for e in entries):
            break
        await asyncio.sleep(0.05)
    return entries


async def test_receipts_go_out_in_arrays_of_at_most_the_size(sim: Sim, receiver: Receiver) -> None:
    await sim.configure(receipt_batch=10, receipt_batch_linger_ms=100)
    await aliyun_send(sim.http, ",".join(NUMBERS))
    await receiver.until(lambda: len(items(receiver)) >= len(NUMBERS))
    reports = receiver.at("/aliyun/report")
    assert sorted(item["phone_number"] for item in items(receiver)) == NUMBERS
    assert max(len(r.json()) for r in reports) == 10 and len(reports) < len(NUMBERS)
    assert [e["receipts_posted"] for e in await all_posted(sim)] == [1] * len(NUMBERS)


async def test_a_lone_receipt_goes_after_the_linger(sim: Sim, receiver: Receiver) -> None:
    await sim.configure(receipt_batch=10, receipt_batch_linger_ms=50)
    await aliyun_send(sim.http, NUMBERS[0])
    [report] = await receiver.wait_for("/aliyun/report")
    assert [item["phone_number"] for item in report.json()] == [NUMBERS[0]]


async def test_a_refused_array_is_posted_again_whole(sim: Sim, receiver: Receiver) -> None:
    await sim.configure(receipt_batch=100, receipt_batch_linger_ms=200)
    receiver.fail_next = 1
    await aliyun_send(sim.http, ",".join(NUMBERS))
    [report] = await receiver.wait_for("/aliyun/report")
    assert sorted(item["phone_number"] for item in report.json()) == NUMBERS
    assert [e["receipts_posted"] for e in await all_posted(sim)] == [1] * len(NUMBERS)


async def test_a_reset_forgets_the_open_arrays(sim: Sim, receiver: Receiver) -> None:
    """Receipts waiting in an array when the carrier is reset are never posted, and the next
    message's receipt goes out on its own after its linger (not held by the forgotten array)."""
    await sim.configure(receipt_batch=10, receipt_batch_linger_ms=60_000)
    await aliyun_send(sim.http, ",".join(NUMBERS[:3]))
    await wait_until(lambda: sim.carrier.receipts_waiting == 3, what="three receipts in the open array")
    assert (await sim.http.post("/_sim/reset")).status_code == 200
    assert sim.carrier.receipts_waiting == 0
    await sim.configure(receipt_batch=10, receipt_batch_linger_ms=50)
    await aliyun_send(sim.http, NUMBERS[5])
    [report] = await receiver.wait_for("/aliyun/report")
    assert [item["phone_number"] for item in report.json()] == [NUMBERS[5]]
