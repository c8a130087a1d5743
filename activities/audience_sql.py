"""An audience's definition compiled to a SQLAlchemy Core WHERE clause over ``customer``.

Every condition compiles to a two-valued predicate (true or false, never NULL), so ``not`` is
plain ``NOT`` and means the complement: a customer without a country passes ``country ne CN``,
and with ``not`` around ``country eq CN`` too. Comparisons on columns stay sargable (``country IS
NOT NULL AND country = 'CN'`` uses ``ix_customer_country``).

JSON attributes are typed: a string never equals a number, ``gt`` only matches numbers, a boolean
only ``true``/``false``. On PostgreSQL the column is ``json``, read with ``->``/``->>`` and
``json_typeof``; ``language`` is ``attributes ->> 'language'``, the expression its index is built
on, and ``tags`` is ``attributes::jsonb -> 'tags'`` with ``?``, ``?|``, ``?&``, which its GIN index
serves. Keys go into the SQL as literals (so that the planner can match those expression indexes;
``nudge.audiences.ATTRIBUTE_KEY`` allows only ``[A-Za-z0-9_]``); values are always bound.
On SQLite, ``json_extract``/``json_type`` and ``json_each`` do the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import (
    ColumnElement,
    Float,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import array
from sqlmodel import col

from nudge.audiences import (
    ATTRIBUTE_KEY,
    EXPERIMENT_KEY,
    All,
    AnyOf,
    Condition,
    Kind,
    Node,
    Not,
    Scalar,
    duration,
    field_kind,
)
from nudge.store import Assignment, Consent, Customer
from nudge.store.customers import LANGUAGE, TAGS

_TIME = TypeAdapter(datetime)


def compile_where(node: Node, *, dialect: str, now: datetime) -> ColumnElement[bool]:
    """The WHERE clause that selects the customers ``node`` describes (erasure not included).

    Args:
        node: a validated definition.
        dialect: ``postgresql`` or ``sqlite`` (the engine's ``dialect.name``).
        now: what ``within`` counts back from.
    """
    if isinstance(node, All):
        return and_(*(compile_where(child, dialect=dialect, now=now) for child in node.all))
    if isinstance(node, AnyOf):
        return or_(*(compile_where(child, dialect=dialect, now=now) for child in node.any))
    if isinstance(node, Not):
        return not_(compile_where(node.not_, dialect=dialect, now=now))
    return _condition(node, dialect=dialect, now=now)


def _condition(condition: Condition, *, dialect: str, now: datetime) -> ColumnElement[bool]:
    kind, op, value = field_kind(condition.field), condition.op, condition.value
    if kind is Kind.TEXT:
        return _text(_text_column(condition.field, dialect), op, value)
    if kind is Kind.TAGS:
        return _tags(dialect, op, value)
    if kind is Kind.ATTRIBUTE:
        match = ATTRIBUTE_KEY.match(condition.field)
        assert match is not None
        return _attribute(match[1], dialect, op, value)
    if kind is Kind.ACTIVITY:
        return _last_active(op, value, now)
    if kind is Kind.TIME:
        return _created(op, value, now)
    if kind is Kind.CONSENT:
        return _consent(op, value)
    match = EXPERIMENT_KEY.match(condition.field)
    assert match is not None
    return _variant(match[1], op, value)


def _text_column(field: str, dialect: str) -> Any:
    if field == "language":
        if dialect == "postgresql":
            return LANGUAGE
        return func.json_extract(col(Customer.attributes), literal_column("'$.language'"), type_=String)
    return col(getattr(Customer, field))


def _text(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    present = column.is_not(None)
    if op == "exists":
        return present if value else column.is_(None)
    matched = and_(present, column == value if op in ("eq", "ne") else column.in_(value))
    return matched if op in ("eq", "in") else not_(matched)


def _tags(dialect: str, op: str, value: Any) -> ColumnElement[bool]:
    wanted = [value] if op == "has" else list(dict.fromkeys(value))
    if dialect == "postgresql":
        tags = TAGS
        is_list = func.coalesce(func.jsonb_typeof(tags), "") == "array"
        if op == "has":
            test = tags.has_key(value)
        elif op == "has_any":
            test = tags.has_any(array(wanted))
        else:
            test = tags.has_all(array(wanted))
        return and_(is_list, test)
    each = func.json_each(col(Customer.attributes), literal_column("'$.tags'")).table_valued("value", "type")
    is_list = (
        func.coalesce(func.json_type(col(Customer.attributes), literal_column("'$.tags'")), "") == "array"
    )
    strings = and_(each.c.type == "text", each.c.value.in_(wanted))
    if op == "has_all":
        found = select(func.count(func.distinct(each.c.value))).where(strings).scalar_subquery()
        return and_(is_list, found == len(wanted))
    return and_(is_list, exists(select(1).select_from(each).where(strings)))


def _attribute(key: str, dialect: str, op: str, value: Any) -> ColumnElement[bool]:
    """A typed test of ``attributes.<key>``; the JSON type names differ by backend."""
    text: Any
    if dialect == "postgresql":
        node: Any = literal_column(f"(customer.attributes -> '{key}')")
        text = literal_column(f"(customer.attributes ->> '{key}')", String)
        json_type = func.coalesce(func.json_typeof(node), "null")
        strings = ["string"]
        is_number: ColumnElement[bool] = json_type == "number"
        number: Any = cast(text, Float)

        def boolean(item: bool) -> ColumnElement[bool]:
            return and_(json_type == "boolean", text == ("true" if item else "false"))

    else:
        path: Any = literal_column(f"'$.{key}'")
        text = func.json_extract(col(Customer.attributes), path, type_=String)
        json_type = func.coalesce(func.json_type(col(Customer.attributes), path), "null")
        strings = ["text"]
        is_number = json_type.in_(["integer", "real"])
        number = func.json_extract(col(Customer.attributes), path)

        def boolean(item: bool) -> ColumnElement[bool]:
            return json_type == ("true" if item else "false")

    if op == "exists":
        present = json_type != "null"
        return present if value else not_(present)

    def numeric(compare: ColumnElement[bool]) -> ColumnElement[bool]:
        """``compare`` on a number, false on anything else: one CASE, so the cast never sees text
        (AND does not promise an order) and the JSON is read once for the type, once for the value."""
        return case((is_number, compare), else_=false())

    if op in ("lt", "le", "gt", "ge"):
        return numeric(
            {"lt": number < value, "le": number <= value, "gt": number > value, "ge": number >= value}[op]
        )

    def equals(item: Scalar) -> ColumnElement[bool]:
        if isinstance(item, bool):
            return boolean(item)
        if isinstance(item, str):
            return and_(json_type.in_(strings), text == item)
        return numeric(number == item)

    items = [value] if op in ("eq", "ne") else value
    matched = or_(*(equals(item) for item in items))
    return matched if op in ("eq", "in") else not_(matched)


def _last_active(op: str, value: Any, now: datetime) -> ColumnElement[bool]:
    """The customer's latest event (``customer.last_active_at``, which the gateway keeps):
    ``within 30d`` means one that occurred in the last 30 days."""
    last = col(Customer.last_active_at)
    if op == "exists":
        return last.is_not(None) if value else last.is_(None)
    recent = and_(last.is_not(None), last >= now - duration(value))
    return recent if op == "within" else not_(recent)


def _created(op: str, value: Any, now: datetime) -> ColumnElement[bool]:
    created = col(Customer.created_at)
    if op in ("within", "not_within"):
        since = now - duration(value)
        return created >= since if op == "within" else created < since
    at = _TIME.validate_python(value)
    return created < at if op == "before" else created > at


def _consent(op: str, value: Any) -> ColumnElement[bool]:
    """SMS marketing consent as the gate reads it: the current row, or none (``unknown``)."""
    mine = and_(
        col(Consent.customer_id) == col(Customer.id),
        col(Consent.channel) == "sms",
        col(Consent.purpose) == "marketing",
    )

    def state(name: str) -> ColumnElement[bool]:
        if name == "unknown":
            return not_(exists().where(mine))
        return exists().where(mine, col(Consent.granted) == (name == "granted"))

    items = [value] if op in ("eq", "ne") else value
    matched = or_(*(state(item) for item in dict.fromkeys(items)))
    return matched if op in ("eq", "in") else not_(matched)


def _variant(experiment: str, op: str, value: Any) -> ColumnElement[bool]:
    """The variant ``split`` assigned the customer in ``experiment`` (the first, kept for good)."""
    mine = and_(col(Assignment.experiment) == experiment, col(Assignment.customer_id) == col(Customer.id))
    if op == "exists":
        assigned = exists().where(mine)
        return assigned if value else not_(assigned)
    items = [value] if op in ("eq", "ne") else value
    matched = exists().where(mine, col(Assignment.variant).in_(items))
    return matched if op in ("eq", "in") else not_(matched)
