"""Alembic's migrations of Nudge's schema, run by ``nudge db upgrade`` (``nudge.store.schema``).

A new one: change the table models, then ``nudge db revision -m "why"`` writes the migration
from the difference (check it by eye: SQLite's tables are altered in batch mode).
"""
