"""A broadcast batch's message rows, read and written a batch at a time.

The journey's ledger (``activities/send/ledger.py``) writes one row per transaction; a broadcast
sends a hundred recipients per batch, so every step here is one statement (or one executemany)
for the whole batch: the recipients' standing in four reads (here), the new rows in one insert,
the gate's refusals in one update, the caps in one transaction that locks the batch's customers
(``gate_rows.py``), the route claims before the provider call, and the answers after it
(``call_rows.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import col, select

from activities.send.ledger import Standing
from nudge.phone import phone_hash
from nudge.store import Consent, Customer, Message, Suppression

from .call_rows import CallRows
from .gate_rows import GateRows
from .table import TABLE, Decision, Settled

__all__ = ["TABLE", "BatchRows", "Decision"]


class BatchRows(GateRows, CallRows):
    """The rows of a broadcast's batches, on one store."""

    async def load(self, keys: dict[str, str]) -> tuple[dict[str, Message], dict[str, Standing]]:
        """The rows already stored for ``keys`` (customer id -> idempotency key), and every
        customer's standing (profile, suppression of their number, marketing consent)."""
        ids = list(keys)
        async with self._reads() as session:
            found = await session.exec(
                select(Message).where(col(Message.idempotency_key).in_(list(keys.values())))
            )
            existing = {row.customer_id: row for row in found.all()}
            customers = {
                c.id: c for c in (await session.exec(select(Customer).where(col(Customer.id).in_(ids)))).all()
            }
            numbers = {
                cid: (
                    existing[cid].to
                    if cid in existing
                    else customers[cid].phone
                    if cid in customers
                    else None
                )
                for cid in ids
            }
            hashes = {cid: phone_hash(n) for cid, n in numbers.items() if n}
            suppressed = {
                s.phone_hash: s
                for s in (
                    await session.exec(
                        select(Suppression).where(col(Suppression.phone_hash).in_(list(set(hashes.values()))))
                    )
                ).all()
            }
            consents = {
                c.customer_id: c
                for c in (
                    await session.exec(
                        select(Consent).where(
                            col(Consent.customer_id).in_(ids),
                            col(Consent.channel) == "sms",
                            col(Consent.purpose) == "marketing",
                        )
                    )
                ).all()
            }
        standing = {
            cid: Standing(
                suppression=suppressed.get(hashes[cid]) if cid in hashes else None,
                consent=consents.get(cid),
                customer=customers.get(cid),
            )
            for cid in ids
        }
        return existing, standing

    async def final(self, keys: Iterable[str]) -> list[Settled]:
        """The rows as they stand now, for the batch's report."""
        async with self._reads() as session:
            found = await session.exec(
                select(TABLE.c.status, TABLE.c.reason, TABLE.c.defer_until).where(
                    TABLE.c.idempotency_key.in_(list(keys))
                )
            )
            return [Settled(*row) for row in found.all()]
