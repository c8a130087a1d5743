"""One test on the ``db_url`` fixture, for ``tests/test_conftest.py`` to run in a pytest of its own.

Its name has no ``test_`` prefix, so the suite does not collect it; pytest collects it only when
named on the command line.
"""

from __future__ import annotations


async def test_probe_gets_a_database(db_url: str) -> None:
    """The fixture gives a database URL (or skips, or ends the run, when PostgreSQL is down)."""
    assert db_url
