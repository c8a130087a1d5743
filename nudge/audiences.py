"""Audiences: a saved, named query over customer profiles, as a validated tree (pure: no SQL).

A definition is a tree of ``{"all": [...]}``, ``{"any": [...]}`` and ``{"not": {...}}`` over
conditions ``{"field": ..., "op": ..., "value": ...}``. The fields are a closed set, each of one
kind, and each kind has its own closed set of operators and value types (``FIELDS``, ``OPS``), so a
typo or a mistyped value is refused when the audience is saved, with a message that names it,
instead of silently matching no one when a broadcast runs. ``activities/audiences.py`` compiles a
valid tree to SQL.

Every condition is two-valued: a customer without the value (no country, no ``language``
attribute, no consent on record) fails ``eq`` and passes ``ne``, so ``not`` of a condition is
exactly its complement. The text form of ``nudge audiences create --where`` is parsed by
``nudge.audience_text`` into the same tree.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    model_validator,
)

AUDIENCE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
"""An audience's name: lower case, digits, ``_ . -``, at most 100 (what a broadcast's spec takes)."""
ATTRIBUTE_KEY = re.compile(r"^attributes\.([A-Za-z_][A-Za-z0-9_]{0,63})$")
"""``attributes.<key>``: a plain key, so that it can go into a JSON path without quoting."""
EXPERIMENT_KEY = re.compile(r"^experiment\.([a-z0-9][a-z0-9_.-]{0,99})$")
"""``experiment.<name>``: the variant a customer was assigned in that experiment."""
DURATION = re.compile(r"^([1-9][0-9]{0,5})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_CONDITIONS = 100
MAX_DEPTH = 8
MAX_VALUES = 1000
"""Bounds on one definition: it is a query a person writes, not a list of ids (upload those)."""


class Kind(StrEnum):
    TEXT = "text"
    """A string column or string attribute; no value means no match for eq/in."""
    TAGS = "tags"
    """``attributes.tags``, a list of strings."""
    ATTRIBUTE = "attribute"
    """Any JSON attribute: typed equality (a string never equals a number), numeric order."""
    ACTIVITY = "activity"
    """The customer's latest event."""
    TIME = "time"
    CONSENT = "consent"
    """SMS marketing consent: ``granted``, ``withdrawn`` or ``unknown`` (nothing on record)."""
    VARIANT = "variant"


FIELDS: dict[str, Kind] = {
    "lifecycle_stage": Kind.TEXT,
    "country": Kind.TEXT,
    "timezone": Kind.TEXT,
    "language": Kind.TEXT,
    "tags": Kind.TAGS,
    "last_active": Kind.ACTIVITY,
    "created_at": Kind.TIME,
    "consent": Kind.CONSENT,
}
"""The named fields; ``attributes.<key>`` and ``experiment.<name>`` are open families."""
OPS: dict[Kind, tuple[str, ...]] = {
    Kind.TEXT: ("eq", "ne", "in", "not_in", "exists"),
    Kind.TAGS: ("has", "has_any", "has_all"),
    Kind.ATTRIBUTE: ("eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "exists"),
    Kind.ACTIVITY: ("within", "not_within", "exists"),
    Kind.TIME: ("within", "not_within", "before", "after"),
    Kind.CONSENT: ("eq", "ne", "in", "not_in"),
    Kind.VARIANT: ("eq", "ne", "in", "not_in", "exists"),
}
CONSENT_STATES = ("granted", "withdrawn", "unknown")
Scalar = str | bool | int | float


def field_kind(name: str) -> Kind:
    """The kind of a field name.

    Raises:
        ValueError: no such field (the message names it and lists the known ones).
    """
    if name in FIELDS:
        return FIELDS[name]
    if ATTRIBUTE_KEY.match(name):
        return Kind.ATTRIBUTE
    if EXPERIMENT_KEY.match(name):
        return Kind.VARIANT
    known = ", ".join([*FIELDS, "attributes.<key>", "experiment.<name>"])
    raise ValueError(f"unknown field {name!r}: the fields are {known}")


def duration(value: str) -> timedelta:
    """``30d`` as a ``timedelta`` (units ``m h d w``)."""
    match = DURATION.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a duration like 30d, 12h, 90m or 2w")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _is_scalar(value: object) -> bool:
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    return isinstance(value, str | bool | int)


def _check_value(field: str, kind: Kind, op: str, value: Any) -> Any:
    """The condition's value, checked against its field's kind and op; the normalised value."""

    def refuse(wanted: str) -> ValueError:
        return ValueError(f"{field} {op} takes {wanted}, not {value!r}")

    if op == "exists":
        if not isinstance(value, bool):
            raise refuse("true or false")
        return value
    if op in ("in", "not_in", "has_any", "has_all"):
        if not isinstance(value, list) or not value or len(value) > MAX_VALUES:
            raise refuse(f"a list of 1 to {MAX_VALUES} values")
        return [_check_value(field, kind, "eq", item) for item in value]
    if kind in (Kind.TEXT, Kind.TAGS, Kind.VARIANT):
        if not isinstance(value, str) or not value or len(value) > 200:
            raise refuse("a string of 1 to 200 characters")
        return value
    if kind is Kind.CONSENT:
        if value not in CONSENT_STATES:
            raise refuse(" or ".join(CONSENT_STATES))
        return value
    if kind is Kind.ATTRIBUTE:
        if op in ("lt", "le", "gt", "ge"):
            if isinstance(value, bool) or not isinstance(value, int | float) or not _is_scalar(value):
                raise refuse("a number")
        elif not _is_scalar(value) or (isinstance(value, str) and len(value) > 200):
            raise refuse("a string, a number or true/false")
        return value
    if op in ("within", "not_within"):
        if not isinstance(value, str):
            raise refuse("a duration like 30d")
        duration(value)
        return value
    try:  # before / after
        TypeAdapter(AwareDatetime).validate_python(value)
    except ValueError:
        raise refuse("a date and time with its offset (2025-01-31T00:00:00Z)") from None
    return value


class Condition(BaseModel):
    """One test of one field: ``{"field": "country", "op": "in", "value": ["CN", "HK"]}``."""

    model_config = ConfigDict(extra="forbid")
    field: str = Field(max_length=120)
    op: str = Field(max_length=20)
    value: Any = None

    @model_validator(mode="after")
    def _valid(self) -> Condition:
        kind = field_kind(self.field)
        if self.op not in OPS[kind]:
            raise ValueError(f"{self.field} takes the operators {', '.join(OPS[kind])}, not {self.op!r}")
        self.value = _check_value(self.field, kind, self.op, self.value)
        return self


class All(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all: list[Node] = Field(min_length=1)


class AnyOf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    any: list[Node] = Field(min_length=1)


class Not(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)
    not_: Node = Field(alias="not")


def _node_tag(value: Any) -> str:
    """Which node a raw value is, by its keys (a condition has ``field``)."""
    if isinstance(value, BaseModel):
        return {All: "all", AnyOf: "any", Not: "not"}.get(type(value), "condition")
    if isinstance(value, dict):
        for key in ("all", "any", "not"):
            if key in value:
                return key
    return "condition"


Node = Annotated[
    Annotated[All, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[Not, Tag("not")]
    | Annotated[Condition, Tag("condition")],
    Discriminator(_node_tag),
]


def walk(node: Node, depth: int = 1) -> tuple[int, int]:
    """How many conditions the tree holds, and how deep it goes."""
    if isinstance(node, Condition):
        return 1, depth
    children = node.all if isinstance(node, All) else node.any if isinstance(node, AnyOf) else [node.not_]
    counts = [walk(child, depth + 1) for child in children]
    return sum(c for c, _ in counts), max(d for _, d in counts)


class AudienceQuery(BaseModel):
    """A whole definition: the root node, within the bounds on size and depth."""

    where: Node

    @model_validator(mode="after")
    def _bounded(self) -> AudienceQuery:
        conditions, depth = walk(self.where)
        if conditions > MAX_CONDITIONS or depth > MAX_DEPTH:
            raise ValueError(f"at most {MAX_CONDITIONS} conditions, nested at most {MAX_DEPTH} deep")
        return self


class AudienceKind(StrEnum):
    QUERY = "query"
    LIST = "list"


class AudienceIn(BaseModel):
    """What ``POST /v1/audiences`` takes: a query audience (a list audience's members are PUT)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=AUDIENCE_NAME_PATTERN, examples=["active-cn"])
    kind: Literal["query", "list"] = "query"
    where: Node | None = None
    """The query (a query audience): ``{"all": [{"field": "country", "op": "eq", "value": "CN"}]}``."""
    description: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _where_fits_kind(self) -> AudienceIn:
        if self.kind == "query" and self.where is None:
            raise ValueError("a query audience needs `where`")
        if self.kind == "list" and self.where is not None:
            raise ValueError("a list audience has no `where`: PUT its members instead")
        if self.where is not None:
            AudienceQuery(where=self.where)
        return self


All.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()
AudienceQuery.model_rebuild()
AudienceIn.model_rebuild()
NODE: TypeAdapter[Node] = TypeAdapter(Node)
