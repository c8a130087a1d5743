"""The names a journey derives deterministically: workflow ids, idempotency keys, A/B buckets.

They are wire values: a running journey is found by its id, a retried send is recognised by its
key, and a customer keeps the variant they were bucketed into across deploys. Changing any of
these formulas reroutes live traffic, so each is pinned by tests with known values.
"""

from __future__ import annotations

from nudge.bucketing import bucket

__all__ = ["bucket", "journey_workflow_id", "legacy_journey_workflow_id", "send_idempotency_key"]


def _part(value: str) -> str:
    """One part of an id, so that ``:`` only ever separates parts: ``%`` -> ``%25``, ``:`` -> ``%3A``
    (an id without either, as nearly all are, is unchanged)."""
    return value.replace("%", "%25").replace(":", "%3A")


def journey_workflow_id(journey: str, customer_id: str, key: str | None = None) -> str:
    """``journey:{journey}:{customer}`` plus ``:{key}`` for a keyed journey (one run per key), each
    part escaped: customer ``col`` with key ``x:y`` and customer ``col:x`` with key ``y`` get two ids."""
    return f"journey:{journey}:{_part(customer_id)}" + (f":{_part(key)}" if key else "")


def legacy_journey_workflow_id(journey: str, customer_id: str, key: str | None = None) -> str:
    """The id before parts were escaped: a journey started then for an id with ``:`` or ``%`` in it
    still runs under it, and is found there until it ends."""
    return f"journey:{journey}:{customer_id}" + (f":{key}" if key else "")


def send_idempotency_key(workflow_id: str, first_run_id: str, seq: int) -> str:
    """The key of a journey's ``seq``-th send: the same across retries, replays and continue-as-new."""
    return f"{workflow_id}/{first_run_id}/{seq}"
