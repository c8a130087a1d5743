"""Customer CSV rows as the gateway's customer records (``nudge customers import``, the demo), and
the gateway's check of an import's rows, a whole chunk at a time.

``customer_record`` turns one ``csv.DictReader`` row into a ``CustomerCreate`` body (the demo and
``/v1/customers:batch``). ``CsvLayout.check`` reads the same columns the same way for an import
job, but column by index and without a model per row: it validates each row as ``CustomerCreate``
would (the id's pattern, the consent's lengths and time), normalises the phone to E.164 in the
row's country (else the default region), and answers the rows to stage and the rejected ones with
their reasons. It is pure (no I/O), so the gateway can run it off its event loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from nudge.errors import InvalidPhoneNumber
from nudge.models import IDENTIFIER_PATTERN
from nudge.phone import to_e164
from nudge.quiet_hours import known_zone

CUSTOMER_COLUMNS = ("id", "name", "phone", "lifecycle_stage", "country", "timezone")
CONSENT_COLUMNS = {"consent_source": "source", "consent_text": "text", "consent_at": "at"}
"""Columns that record the customer's marketing consent with the profile."""

MAX_ID = 200
MAX_SOURCE = 200
MAX_TEXT = 2000
"""The limits of ``CustomerCreate.id``, ``ConsentIn.source`` and ``ConsentIn.text``."""

_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_TIME = TypeAdapter(datetime)


def customer_record(raw: dict[str, str | None]) -> dict[str, Any]:
    """One CSV row as a ``CustomerIn`` body: known columns, consent, and the rest as attributes."""
    record: dict[str, Any] = {k: (raw.get(k) or None) for k in CUSTOMER_COLUMNS if k in raw}
    record["id"] = (raw.get("id") or "").strip()
    record["lifecycle_stage"] = record.get("lifecycle_stage") or "new"
    record["attributes"] = {
        k: v for k, v in raw.items() if k and k not in CUSTOMER_COLUMNS and k not in CONSENT_COLUMNS
    }
    if (raw.get("consent_source") or "").strip():
        record["consent"] = {
            field: (raw.get(column) or "").strip()
            for column, field in CONSENT_COLUMNS.items()
            if (raw.get(column) or "").strip()
        }
    return record


@dataclass(frozen=True)
class Reject:
    """A row that is not imported, and why (``phone: not a valid phone number for its region``)."""

    line: int
    customer_id: str
    reason: str


@dataclass
class Checked:
    """A chunk's rows to stage (``nudge.store.imports.STAGED_COLUMNS`` order, without the import
    id) and its rejected rows."""

    staged: list[tuple[Any, ...]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


class CsvLayout:
    """An import's header, resolved once: where each known column is, which are attributes.

    Raises:
        ValueError: the header has no ``id`` column, or a column name twice (a ``DictReader``
            would keep only the last one's values, silently).
    """

    def __init__(self, header: Sequence[str]) -> None:
        if "id" not in header:
            raise ValueError("the header row must include an 'id' column")
        seen: set[str] = set()
        for name in header:
            if name and name in seen:
                raise ValueError(f"the header row names the column {name!r} twice")
            seen.add(name)
        self.width = len(header)
        where = {name: index for index, name in enumerate(header)}
        # An absent column reads the padding past the header's last one: always None.
        self._known = {name: where.get(name, self.width) for name in (*CUSTOMER_COLUMNS, *CONSENT_COLUMNS)}
        self._attributes = [
            (index, name)
            for index, name in enumerate(header)
            if name and name not in CUSTOMER_COLUMNS and name not in CONSENT_COLUMNS
        ]

    def check(
        self, lines: Sequence[int], rows: Sequence[Sequence[str | None]], *, default_region: str
    ) -> Checked:
        """Check and normalise a chunk: each row read like ``customer_record`` (a missing value is
        None, extra values are ignored, as ``csv.DictReader`` does) and validated like
        ``CustomerCreate``, its phone in E.164.

        Besides what ``/v1/customers:batch`` checks, the country is upper-cased (``cn`` is CN, as
        ``nudge customers add`` does) and a time zone must be an IANA one: quiet hours would
        otherwise ignore it without a word.
        """
        known, attributes, width = self._known, self._attributes, self.width
        pad: list[str | None] = [None] * (width + 1)
        at_id, at_name, at_phone = known["id"], known["name"], known["phone"]
        at_stage, at_country, at_zone = known["lifecycle_stage"], known["country"], known["timezone"]
        at_source, at_text, at_time = known["consent_source"], known["consent_text"], known["consent_at"]
        dumps, checked = json.dumps, Checked()
        for line, given in zip(lines, rows, strict=True):
            # Padded past the header: a short row's missing values, and absent columns, are None.
            values = [*given, *pad[len(given) :]] if len(given) <= width else [*given[:width], None]
            customer_id = (values[at_id] or "").strip()
            country = (values[at_country] or "").strip().upper() or None
            zone = values[at_zone] or None
            source = (values[at_source] or "").strip()
            text = (values[at_text] or "").strip() if source else ""
            when = (values[at_time] or "").strip() if source else ""
            reason, consent_at = _row_problem(customer_id, zone, source, text), None
            if reason is None and when:
                try:
                    consent_at = _utc(_TIME.validate_python(when))
                except ValidationError as exc:
                    reason = f"consent_at: {exc.errors()[0]['msg']}"
            phone = values[at_phone] or None
            if reason is None and phone is not None:
                try:
                    phone = to_e164(phone, default_region=country or default_region)
                except InvalidPhoneNumber as exc:
                    reason = f"phone: {exc}"
            if reason is not None:
                checked.rejects.append(Reject(line, customer_id, reason))
                continue
            checked.staged.append(
                (
                    line,
                    customer_id,
                    values[at_name] or None,
                    phone,
                    values[at_stage] or "new",
                    country,
                    zone,
                    dumps({name: values[index] for index, name in attributes}),
                    source or None,
                    text if source else None,
                    consent_at,
                )
            )
        return checked


def check_chunk(
    header: Sequence[str], lines: Sequence[int], rows: Sequence[Sequence[str | None]], default_region: str
) -> Checked:
    """``CsvLayout(header).check(...)`` as one top-level function: what a process pool can call."""
    return CsvLayout(header).check(lines, rows, default_region=default_region)


def _utc(moment: datetime) -> datetime:
    """In UTC, as ``UTCDateTime`` stores it (a time without an offset is taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _row_problem(customer_id: str, zone: str | None, source: str, text: str) -> str | None:
    """Why a row cannot be imported (the checks that need no parsing), or None."""
    if not customer_id:
        return "empty id"
    if len(customer_id) > MAX_ID:
        return f"id: longer than {MAX_ID} characters"
    if not _IDENTIFIER.fullmatch(customer_id):
        return "id: contains a control character or a line separator"
    if zone is not None and not known_zone(zone):
        return f"timezone: {zone!r} is not an IANA time zone, e.g. Asia/Shanghai"
    if len(source) > MAX_SOURCE:
        return f"consent_source: longer than {MAX_SOURCE} characters"
    if len(text) > MAX_TEXT:
        return f"consent_text: longer than {MAX_TEXT} characters"
    return None
