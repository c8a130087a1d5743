"""``make mutation`` still points at today's code: every planted bug's line exists exactly once
where it says, every module a mutation group lists exists, and so does every test path. A module
moved without updating them fails here, in ``make test``, not an hour into ``make mutation``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.mutation.planted import PLANTED, Planted

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("bug", PLANTED, ids=lambda b: b.what[:60])
def test_each_planted_bug_finds_its_line_once(bug: Planted) -> None:
    assert (ROOT / bug.path).read_text().count(bug.old) == 1
    assert all((ROOT / test).exists() for test in bug.tests)


def test_every_mutation_group_names_modules_and_tests_that_exist() -> None:
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["nudge"]["mutation"]
    missing = [
        path
        for group in groups.values()
        for path in [*group["modules"], *group["tests"]]
        if not (ROOT / path).exists()
    ]
    assert missing == []
