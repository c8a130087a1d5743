"""An audience's definition is validated before it is saved, and its text form parses to the tree."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from nudge.audience_text import InvalidAudienceText, parse_where
from nudge.audiences import MAX_CONDITIONS, NODE, AudienceIn, duration


def refusal(where: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        AudienceIn(name="a", where=where)
    return str(caught.value)


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ({"field": "cuntry", "op": "eq", "value": "CN"}, "unknown field 'cuntry'"),
        ({"field": "attributes.", "op": "eq", "value": "x"}, "unknown field 'attributes.'"),
        ({"field": "attributes.a-b", "op": "eq", "value": "x"}, "unknown field 'attributes.a-b'"),
        (
            {"field": "country", "op": "gt", "value": "CN"},
            "country takes the operators eq, ne, in, not_in, exists",
        ),
        ({"field": "country", "op": "eq", "value": 86}, "country eq takes a string"),
        ({"field": "country", "op": "in", "value": "CN"}, "country in takes a list"),
        ({"field": "country", "op": "in", "value": []}, "country in takes a list"),
        ({"field": "attributes.age", "op": "gt", "value": "18"}, "attributes.age gt takes a number"),
        ({"field": "attributes.age", "op": "gt", "value": True}, "attributes.age gt takes a number"),
        (
            {"field": "attributes.plan", "op": "eq", "value": {"a": 1}},
            "takes a string, a number or true/false",
        ),
        ({"field": "attributes.plan", "op": "eq", "value": None}, "takes a string, a number or true/false"),
        ({"field": "last_active", "op": "within", "value": "30 days"}, "is not a duration like 30d"),
        ({"field": "last_active", "op": "within", "value": 30}, "last_active within takes a duration"),
        ({"field": "created_at", "op": "after", "value": "2025-01-01"}, "a date and time with its offset"),
        (
            {"field": "consent", "op": "eq", "value": "yes"},
            "consent eq takes granted or withdrawn or unknown",
        ),
        ({"field": "tags", "op": "eq", "value": "vip"}, "tags takes the operators has, has_any, has_all"),
        ({"field": "language", "op": "exists", "value": "yes"}, "language exists takes true or false"),
        ({"field": "country", "op": "eq", "value": "CN", "extra": 1}, "Extra inputs are not permitted"),
        ({"all": []}, "at least 1 item"),
        ({"all": [{"field": "country", "op": "eq", "value": "CN"}], "any": []}, "Extra inputs"),
    ],
)
def test_definition_refuses_unknown_fields_ops_and_mistyped_values_naming_them(
    where: Any, reason: str
) -> None:
    """Each mistake is refused with a message that names the field, the operator or the value."""
    assert reason in refusal(where)


def test_definition_refuses_a_mistake_deep_in_the_tree() -> None:
    """A wrong value three levels down is still found and named."""
    where = {"all": [{"any": [{"not": {"field": "attributes.age", "op": "lt", "value": "x"}}]}]}
    assert "attributes.age lt takes a number" in refusal(where)


def test_definition_is_bounded_in_size_and_depth() -> None:
    """More than MAX_CONDITIONS conditions, or nesting past the bound, is refused (a query, not a list)."""
    wide = {"any": [{"field": "country", "op": "eq", "value": f"C{i}"} for i in range(MAX_CONDITIONS + 1)]}
    assert "at most" in refusal(wide)
    deep: dict[str, Any] = {"field": "country", "op": "eq", "value": "CN"}
    for _ in range(10):
        deep = {"not": deep}
    assert "at most" in refusal(deep)


def test_definition_kind_and_where_must_agree() -> None:
    """A query audience needs `where`; a list audience may not have one."""
    with pytest.raises(ValidationError, match="needs `where`"):
        AudienceIn(name="a")
    with pytest.raises(ValidationError, match="PUT its members"):
        AudienceIn(name="a", kind="list", where={"field": "country", "op": "eq", "value": "CN"})
    with pytest.raises(ValidationError, match="string_pattern_mismatch|should match pattern"):
        AudienceIn(name="Bad Name", kind="list")


def test_definition_round_trips_through_json_with_not_spelled_not() -> None:
    """The saved JSON is the tree as written (``not``, not ``not_``) and validates back to itself."""
    where = {
        "all": [
            {"not": {"field": "tags", "op": "has", "value": "x"}},
            {"field": "country", "op": "eq", "value": "CN"},
        ]
    }
    dumped = AudienceIn(name="a", where=where).model_dump(mode="json")["where"]
    assert dumped == {
        "all": [
            {"not": {"field": "tags", "op": "has", "value": "x"}},
            {"field": "country", "op": "eq", "value": "CN"},
        ]
    }
    assert NODE.dump_python(NODE.validate_python(dumped), mode="json") == dumped


def test_duration_reads_each_unit() -> None:
    assert [duration(d).total_seconds() for d in ("90m", "12h", "30d", "2w")] == [
        5400,
        43200,
        2592000,
        1209600,
    ]


def test_text_form_parses_the_issue_example_to_the_tree() -> None:
    """The example from the issue, word for word, gives the tree a person would write in JSON."""
    text = (
        "lifecycle_stage in (active, vip) and country = CN and last_active within 30d and consent = granted"
    )
    assert parse_where(text) == {
        "all": [
            {"field": "lifecycle_stage", "op": "in", "value": ["active", "vip"]},
            {"field": "country", "op": "eq", "value": "CN"},
            {"field": "last_active", "op": "within", "value": "30d"},
            {"field": "consent", "op": "eq", "value": "granted"},
        ]
    }


def test_text_form_and_binds_tighter_than_or_and_parentheses_group() -> None:
    a, b, c = ({"field": "country", "op": "eq", "value": v} for v in "ABC")
    assert parse_where("country = A or country = B and country = C") == {"any": [a, {"all": [b, c]}]}
    assert parse_where("(country = A or country = B) and country = C") == {"all": [{"any": [a, b]}, c]}
    assert parse_where("NOT country = A") == {"not": a}


def test_text_form_types_attribute_values_and_reads_every_operator() -> None:
    """Bare numbers and true/false are typed for attributes only; quoting keeps text."""
    parsed = parse_where(
        'attributes.age >= 18 and attributes.score < 2.5 and attributes.vip = true and attributes.code = "12"'
        " and country != 12 and tags has any (a, b) and tags has all (c) and country not in (X)"
        " and last_active not within 2w and language exists and timezone missing"
        " and created_at before 2025-01-01T00:00:00Z and experiment.welcome = b"
    )
    assert [(c["field"], c["op"], c["value"]) for c in parsed["all"]] == [
        ("attributes.age", "ge", 18),
        ("attributes.score", "lt", 2.5),
        ("attributes.vip", "eq", True),
        ("attributes.code", "eq", "12"),
        ("country", "ne", "12"),
        ("tags", "has_any", ["a", "b"]),
        ("tags", "has_all", ["c"]),
        ("country", "not_in", ["X"]),
        ("last_active", "not_within", "2w"),
        ("language", "exists", True),
        ("timezone", "exists", False),
        ("created_at", "before", "2025-01-01T00:00:00Z"),
        ("experiment.welcome", "eq", "b"),
    ]
    NODE.validate_python(parsed)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("country = ", "ends too early"),
        ("country CN", "expected an operator after 'country'"),
        ("country = CN CN", "unexpected 'CN'"),
        ("(country = CN", "ends too early"),
        ("country = (CN, HK", "ends too early"),
        ("= CN", "expected a field name"),
        ("country = ,", "expected a value"),
    ],
)
def test_text_form_refuses_bad_syntax_saying_where(text: str, reason: str) -> None:
    with pytest.raises(InvalidAudienceText, match=reason.replace("(", r"\(")):
        parse_where(text)
