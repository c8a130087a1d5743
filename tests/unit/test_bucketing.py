"""A/B bucketing is pinned to known variants for known ids, so a change of hashing fails here;
so are the other names ``workflows.keys`` derives, workflow ids and idempotency keys.

A customer's variant must survive a deploy: ``bucket`` is judged against a table written out by
hand and against a separate implementation of the documented scheme (SHA-256 of
``"<experiment>:<customer>"``, the first 8 bytes big-endian as a fraction of 2**64, scaled by the
total weight, then the variants in name order, each owning a half-open slice ``[from, to)``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.keys import bucket, journey_workflow_id, send_idempotency_key

KNOWN: list[tuple[str, str, dict[str, float], str]] = [
    ("welcome_copy", "c1", {"a": 50, "b": 50}, "a"),
    ("welcome_copy", "c2", {"a": 50, "b": 50}, "a"),
    ("welcome_copy", "c3", {"a": 50, "b": 50}, "a"),
    ("welcome_copy", "cust-0001", {"a": 50, "b": 50}, "b"),
    ("welcome_copy", "cust-0002", {"a": 50, "b": 50}, "a"),
    ("subject", "ada@example.com", {"control": 1, "short": 1, "emoji": 1}, "emoji"),
    ("subject", "grace", {"control": 1, "short": 1, "emoji": 1}, "short"),
    ("coupon", "c42", {"none": 80, "ten": 15, "twenty": 5}, "none"),
    ("coupon", "c43", {"none": 80, "ten": 15, "twenty": 5}, "twenty"),
    ("coupon", "c44", {"none": 80, "ten": 15, "twenty": 5}, "ten"),
    ("发送时间", "客户-7", {"morning": 0.3, "evening": 0.7}, "evening"),
    ("x", "c1", {"a": 0, "b": 1}, "b"),
]
"""(experiment, customer, weights) -> variant, as assigned today. Between them these rows change
under each of: customer:experiment order, another separator or none, SHA-1 or MD5, little-endian
or the last 8 bytes, insertion order instead of name order."""


def _fraction(experiment: str, customer_id: str) -> float:
    """Where the customer falls in [0, 1): the first 8 bytes of the SHA-256, over 2**64."""
    digest = hashlib.sha256((experiment + ":" + customer_id).encode("utf-8")).hexdigest()
    return int(digest[:16], 16) / 18446744073709551616


def _expected(experiment: str, customer_id: str, weights: Mapping[str, float]) -> str:
    """The documented scheme, written separately: cumulative slices in variant-name order."""
    point = _fraction(experiment, customer_id) * sum(weights.values())
    upper = 0.0
    names = sorted(weights)
    for name in names:
        upper += weights[name]
        if point < upper:
            return name
    return names[-1]


@pytest.mark.parametrize(
    ("experiment", "customer_id", "weights", "variant"),
    KNOWN,
    ids=[f"{e}:{c}" if (e + c).isascii() else f"unicode-ids-{i}" for i, (e, c, _, _) in enumerate(KNOWN)],
)
def test_bucket_assigns_the_pinned_variant(
    experiment: str, customer_id: str, weights: dict[str, float], variant: str
) -> None:
    """Known ids keep their known variants (and the separate implementation agrees with the table)."""
    assert bucket(experiment, customer_id, weights) == variant
    assert _expected(experiment, customer_id, weights) == variant


@settings(max_examples=300, deadline=None)
@given(
    experiment=st.text(min_size=1, max_size=20),
    customer_id=st.text(min_size=1, max_size=30),
    weights=st.dictionaries(
        st.sampled_from(["a", "b", "c", "control", "z"]), st.integers(0, 100), min_size=1, max_size=5
    ).filter(lambda w: sum(w.values()) > 0),
)
def test_bucket_agrees_with_the_documented_scheme(
    experiment: str, customer_id: str, weights: dict[str, int]
) -> None:
    """Property: for any ids (unicode included) and integer weights, bucket follows the scheme."""
    assert bucket(experiment, customer_id, weights) == _expected(experiment, customer_id, weights)


def test_bucket_point_on_a_boundary_goes_to_the_next_variant() -> None:
    """Slices are half-open: a customer exactly on the a/b boundary is in b, just above it in a."""
    customer = "c1"
    fraction = _fraction("edge", customer)
    assert fraction >= 0.5  # so that 1 - fraction and the total 1.0 are exact in floating point
    on_boundary = {"a": fraction, "b": 1.0 - fraction}
    assert sum(on_boundary.values()) == 1.0
    assert bucket("edge", customer, on_boundary) == "b"
    assert bucket("edge", customer, {"a": fraction + 1e-9, "b": 1.0 - fraction}) == "a"


def test_bucket_point_on_a_middle_boundary_goes_to_the_next_variant() -> None:
    """With three variants, a customer exactly where b ends is in c, not b."""
    customer = "c1"
    fraction = _fraction("edge", customer)
    weights = {"a": 0.25, "b": fraction - 0.25, "c": 1.0 - fraction}
    assert bucket("edge", customer, weights) == "c"
    assert bucket("edge", customer, {**weights, "b": fraction - 0.25 + 1e-9}) == "b"


def test_bucket_orders_variants_by_name_not_by_insertion() -> None:
    """The same weights in another insertion order give the same variant."""
    forward = {"control": 1, "short": 1, "emoji": 1}
    backward = {"emoji": 1, "short": 1, "control": 1}
    for customer in ["ada@example.com", "grace", "c1", "c2", "c3"]:
        assert bucket("subject", customer, forward) == bucket("subject", customer, backward)
    assert bucket("subject", "ada@example.com", forward) == "emoji"


def test_bucket_never_picks_a_zero_weight_variant() -> None:
    """A variant with weight 0 owns an empty slice, whatever the customer."""
    picked = {bucket("zero", f"c{i}", {"a": 1, "b": 0, "c": 1}) for i in range(200)}
    assert picked == {"a", "c"}


@pytest.mark.parametrize(
    "weights",
    [{}, {"a": 0}, {"a": 0, "b": 0}, {"a": 1, "b": -1}, {"a": 2, "b": -1}],
    ids=["none", "one-zero", "all-zero", "negative-sums-to-zero", "negative-sums-positive"],
)
def test_bucket_rejects_weights_with_no_positive_split(weights: dict[str, float]) -> None:
    """No variants, all-zero weights, or any negative weight (even with a positive total) are a
    journey definition error."""
    with pytest.raises(ValueError, match="^split weights must be non-negative and not all zero$"):
        bucket("x", "c1", weights)


def test_bucket_point_past_every_slice_goes_to_the_last_variant() -> None:
    """When the point lies past every slice (here the total overflows to infinity), the customer
    goes to the last variant in name order, not the last inserted or the second."""
    weights = {"b": 1e308, "d": 1e308, "a": 1e308, "c": 1e308}
    assert sum(weights.values()) == float("inf")
    assert {bucket("huge", f"c{i}", weights) for i in range(20)} == {"d"}


@pytest.mark.parametrize(
    ("journey", "customer_id", "key", "workflow_id"),
    [
        ("welcome", "c1", None, "journey:welcome:c1"),
        ("cart_abandonment", "c1", "k1", "journey:cart_abandonment:c1:k1"),
        ("payment_success", "cust-0001", "o-2", "journey:payment_success:cust-0001:o-2"),
        ("welcome", "c1", "", "journey:welcome:c1"),
        ("payment_success", "col", "x:y", "journey:payment_success:col:x%3Ay"),
        ("payment_success", "col:x", "y", "journey:payment_success:col%3Ax:y"),
        ("welcome", "100%:a", None, "journey:welcome:100%25%3Aa"),
        ("welcome", "a%3Ab", None, "journey:welcome:a%253Ab"),
    ],
    ids=[
        "unkeyed",
        "keyed",
        "keyed-dashes",
        "empty-key-is-unkeyed",
        "colon-in-key",
        "colon-in-customer",
        "percent-and-colon",
        "already-escaped-looking",
    ],
)
def test_journey_workflow_id_is_pinned(
    journey: str, customer_id: str, key: str | None, workflow_id: str
) -> None:
    """A journey's workflow id is journey:<journey>:<customer>, plus :<key> for a (non-empty) key."""
    assert journey_workflow_id(journey, customer_id, key) == workflow_id


@given(
    st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=8)),
    st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=8)),
)
def test_journey_workflow_id_is_injective(first: tuple[str, str], second: tuple[str, str]) -> None:
    """Two different (customer, key) pairs never share an id: the id splits back into its parts
    (unescaped by hand here, not by the code under test)."""

    def parts(workflow_id: str) -> list[str]:
        return [p.replace("%3A", ":").replace("%25", "%") for p in workflow_id.split(":")[2:]]

    for customer, key in (first, second):
        assert parts(journey_workflow_id("j", customer, key)) == [customer, *([key] if key else [])]
    if first != second and first[1] and second[1]:
        assert journey_workflow_id("j", *first) != journey_workflow_id("j", *second)


def test_journey_workflow_id_key_defaults_to_none() -> None:
    """Without a key the id has no key part."""
    assert journey_workflow_id("welcome", "c1") == "journey:welcome:c1"


def test_send_idempotency_key_is_pinned() -> None:
    """A send's key is <workflow id>/<first run id>/<seq>, as the providers and the ledger see it."""
    assert send_idempotency_key("journey:cart_abandonment:c1:k1", "run-1", 1) == (
        "journey:cart_abandonment:c1:k1/run-1/1"
    )
    assert send_idempotency_key("journey:welcome:c1", "0f9a", 12) == "journey:welcome:c1/0f9a/12"
