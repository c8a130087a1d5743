"""The compact text form of an audience, as ``nudge audiences create --where`` takes it.

    lifecycle_stage in (active, vip) and country = CN and last_active within 30d
        and consent = granted and not tags has churned

Grammar (keywords in any case; ``and`` binds tighter than ``or``; parentheses group)::

    expr      := term ("or" term)*
    term      := factor ("and" factor)*
    factor    := "not" factor | "(" expr ")" | condition
    condition := FIELD OP VALUE | FIELD "exists" | FIELD "missing"
    OP        := = | != | < | <= | > | >= | in | not in | has | has any | has all
                 | within | not within | before | after
    VALUE     := WORD | "quoted text" | "(" VALUE ("," VALUE)* ")"

A bare word is text, except for ``attributes.<key>``, where ``12`` and ``4.5`` are numbers and
``true``/``false`` booleans (quote them for text: ``attributes.code = "12"``). The result is the
JSON tree of ``nudge.audiences``, which then validates it: this module only reads the syntax.
"""

from __future__ import annotations

import re
from typing import Any

from nudge.errors import InvalidInput

_TOKEN = re.compile(r"""\s*(?:("(?:[^"\\]|\\.)*")|(!=|<=|>=|=|<|>|\(|\)|,)|([^\s()",=<>!]+))""")
_OPS = {"=": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_WORD_OPS = {"in": "in", "has": "has", "within": "within", "before": "before", "after": "after"}
_NUMBER = re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?$")


class InvalidAudienceText(InvalidInput):
    """The ``--where`` text does not parse; the message says where and what was expected."""


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) pairs: ``quoted``, ``punct`` or ``word``."""
    found, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise InvalidAudienceText(
                f"cannot read {text[position:].strip()[:20]!r} (at character {position})"
            )
        quoted, punct, word = match.groups()
        if quoted is not None:
            found.append(("quoted", re.sub(r"\\(.)", r"\1", quoted[1:-1])))
        elif punct is not None:
            found.append(("punct", punct))
        else:
            found.append(("word", word))
        position = match.end()
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def keyword(self, *words: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token[0] == "word" and token[1].lower() in words

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise InvalidAudienceText("the text ends too early: a value or a condition is missing")
        self.at += 1
        return token

    def expect(self, punct: str) -> None:
        token = self.take()
        if token != ("punct", punct):
            raise InvalidAudienceText(f"expected {punct!r}, found {token[1]!r}")

    def expr(self) -> dict[str, Any]:
        terms = [self.term()]
        while self.keyword("or"):
            self.at += 1
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else {"any": terms}

    def term(self) -> dict[str, Any]:
        factors = [self.factor()]
        while self.keyword("and"):
            self.at += 1
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else {"all": factors}

    def factor(self) -> dict[str, Any]:
        if self.keyword("not"):
            self.at += 1
            return {"not": self.factor()}
        if self.peek() == ("punct", "("):
            self.at += 1
            inner = self.expr()
            self.expect(")")
            return inner
        return self.condition()

    def condition(self) -> dict[str, Any]:
        kind, field = self.take()
        if kind != "word":
            raise InvalidAudienceText(f"expected a field name, found {field!r}")
        if self.keyword("exists", "missing"):
            return {"field": field, "op": "exists", "value": self.take()[1].lower() == "exists"}
        return {"field": field, "op": (op := self.operator(field)), "value": self.value(field, op)}

    def operator(self, field: str) -> str:
        kind, text = self.take()
        if kind == "punct" and text in _OPS:
            return _OPS[text]
        word = text.lower() if kind == "word" else ""
        if word == "not" and self.keyword("in", "within"):
            return "not_" + self.take()[1].lower()
        if word == "has" and self.keyword("any", "all"):
            return "has_" + self.take()[1].lower()
        if word in _WORD_OPS:
            return _WORD_OPS[word]
        raise InvalidAudienceText(f"expected an operator after {field!r} (= != < <= > >= in has within...)")

    def value(self, field: str, op: str) -> Any:
        if self.peek() == ("punct", "("):
            self.at += 1
            values = [self.scalar(field)]
            while self.peek() == ("punct", ","):
                self.at += 1
                values.append(self.scalar(field))
            self.expect(")")
            return values
        scalar = self.scalar(field)
        return [scalar] if op in ("in", "not_in", "has_any", "has_all") else scalar

    def scalar(self, field: str) -> Any:
        kind, text = self.take()
        if kind == "punct":
            raise InvalidAudienceText(f"expected a value for {field!r}, found {text!r}")
        if kind == "quoted" or not field.startswith("attributes."):
            return text
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        if _NUMBER.match(text):
            return float(text) if "." in text else int(text)
        return text


def parse_where(text: str) -> dict[str, Any]:
    """The JSON tree of a ``--where`` text (not yet validated: ``nudge.audiences`` does that).

    Raises:
        InvalidAudienceText: the text does not parse.
    """
    parser = _Parser(text)
    if not parser.tokens:
        raise InvalidAudienceText("the text is empty: write a condition like `country = CN`")
    tree = parser.expr()
    if parser.peek() is not None:
        raise InvalidAudienceText(f"unexpected {parser.peek()[1]!r}: join conditions with `and` or `or`")  # type: ignore[index]
    return tree


_SYMBOLS = {op: symbol for symbol, op in _OPS.items()}


def to_text(node: dict[str, Any]) -> str:
    """A definition in the text form (what ``nudge audiences show`` prints; it parses back)."""
    if "all" in node or "any" in node:
        joiner = " and " if "all" in node else " or "
        parts = [to_text(child) for child in node.get("all") or node["any"]]
        text = joiner.join(
            f"({p})" if ("any" in child or "all" in child) else p
            for p, child in zip(parts, node.get("all") or node["any"], strict=True)
        )
        return text
    if "not" in node:
        inner = node["not"]
        return f"not ({to_text(inner)})" if ("any" in inner or "all" in inner) else f"not {to_text(inner)}"
    field, op, value = node["field"], node["op"], node["value"]
    if op == "exists":
        return f"{field} {'exists' if value else 'missing'}"
    if isinstance(value, list):
        shown = f"({', '.join(_literal(field, v) for v in value)})"
    else:
        shown = _literal(field, value)
    return f"{field} {_SYMBOLS.get(op, op.replace('_', ' '))} {shown}"


def _literal(field: str, value: Any) -> str:
    """A value as the parser reads it back: quoted when a bare word would read otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    bare = re.fullmatch(r"[^\s()\",=<>!]+", value) is not None and value.lower() not in ("and", "or", "not")
    if (
        bare
        and field.startswith("attributes.")
        and (value.lower() in ("true", "false") or _NUMBER.match(value))
    ):
        bare = False
    return value if bare else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
