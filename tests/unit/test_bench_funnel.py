"""``bench/funnel.py``'s guards: it drops only a database it created itself, and only one named as
the benchmark's own, never the app's or the tests'."""

from __future__ import annotations

from typing import Any

import pytest

from bench import funnel


class Server:
    """psycopg.connect's stand-in: answers SHOW with a value and records nothing else."""

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str) -> Any:
        class Row:
            def fetchone(self) -> list[str]:
                return ["x"]

        return Row()


@pytest.mark.parametrize("database", ["nudge", "test", "postgres", "nudge_bench; DROP", "Nudge_bench_x"])
def test_the_benchmark_takes_only_a_database_named_as_its_own(
    monkeypatch: pytest.MonkeyPatch, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--database nudge`` (the app's) or ``test`` stops before any connection."""
    monkeypatch.setattr(funnel.psycopg, "connect", lambda *a, **k: pytest.fail("connected"))
    with pytest.raises(SystemExit):
        funnel.main(["--database", database])
    assert "nudge_bench" in capsys.readouterr().err


def test_a_reused_database_is_not_dropped_without_keep(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--reuse`` without ``--keep`` leaves the database it found as it was, even when the run
    fails; a database the run created is dropped."""
    admin: list[str] = []
    monkeypatch.setattr(funnel.psycopg, "connect", lambda *a, **k: Server())
    monkeypatch.setattr(funnel, "_admin", lambda server, sql: admin.append(sql))
    monkeypatch.setattr(funnel, "database_exists", lambda server, name: True)

    def stop(*args: Any) -> Any:
        raise RuntimeError("stopped here")

    monkeypatch.setattr(funnel, "counts", stop)
    with pytest.raises(RuntimeError, match="stopped here"):
        funnel.main(["--reuse", "--database", "nudge_bench_funnel"])
    assert not any("DROP" in sql for sql in admin)

    monkeypatch.setattr(funnel, "database_exists", lambda server, name: False)
    monkeypatch.setattr(funnel, "create_database", lambda server, name: None)
    monkeypatch.setattr(funnel, "create_engine", stop)
    with pytest.raises(RuntimeError, match="stopped here"):
        funnel.main(["--reuse", "--database", "nudge_bench_funnel"])
    assert admin == ['DROP DATABASE IF EXISTS "nudge_bench_funnel" WITH (FORCE)']
