"""A/B buckets: a customer's deterministic place among an experiment's variants.

A wire value: a customer keeps the variant they were bucketed into across deploys, so the formula
is pinned by tests with known values (``tests/unit/test_bucketing.py``). In the kernel, because
both the journey runtime and the ``assign_variant`` activity (a bandit's allocation) use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def bucket(experiment: str, customer_id: str, weights: Mapping[str, float]) -> str:
    """Deterministic weighted assignment of a customer to a variant (stable across runs).

    The point is the first 8 bytes of sha256("{experiment}:{customer_id}") scaled to the total
    weight; variants are laid out in name order, each over ``[start, start + weight)``.
    """
    if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError("split weights must be non-negative and not all zero")
    digest = hashlib.sha256(f"{experiment}:{customer_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(weights.values())
    for variant, weight in sorted(weights.items()):
        if point < weight:
            return variant
        point -= weight
    return sorted(weights)[-1]
