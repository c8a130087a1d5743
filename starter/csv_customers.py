"""Customer CSV rows as the gateway's customer records (``nudge customers import``, the demo)."""

from __future__ import annotations

from typing import Any

CUSTOMER_COLUMNS = ("id", "name", "phone", "lifecycle_stage", "country", "timezone")
CONSENT_COLUMNS = {"consent_source": "source", "consent_text": "text", "consent_at": "at"}
"""Columns that record the customer's marketing consent with the profile."""


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
