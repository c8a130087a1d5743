"""Run today's tests against named mutants, in a scratch copy, without touching mutmut's results.

For killing survivors while a long ``make mutation`` is still running (or by several people at
once): the mutated sources of the last run are copied once into ``--workdir``, today's ``tests/``
over them on every call, and each mutant is switched on by ``MUTANT_UNDER_TEST``.

    python -m tests.mutation.check --workdir /tmp/mut-a \\
        'nudge.signing.x__port_variants__mutmut_8' 'nudge.signing.x__port_variants__mutmut_9' \\
        -- tests/unit/test_signing.py

A mutant name may end in ``*`` to take every survivor of the last run that starts with it.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.mutation.__main__ import ROOT, SURVIVED, groups, load_results, results_root


def survivors_matching(pattern: str) -> list[str]:
    modules = [m for g in groups() for m in g.modules]
    names = [n for codes in load_results(modules).values() for n, c in codes.items() if c in SURVIVED]
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mutation.check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--workdir", type=Path, required=True, help="scratch folder (made on first use)")
    parser.add_argument("mutants", nargs="+", help="mutant names; a trailing * takes the matching survivors")
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        parser.error("name the tests to run after --")
    split = argv.index("--")
    args = parser.parse_args(argv[:split])
    tests = argv[split + 1 :]
    if not tests:
        parser.error("name the tests to run after --")
    names = [n for m in args.mutants for n in (survivors_matching(m) if m.endswith("*") else [m])]
    if not names:
        parser.error("no such survivors")
    modules = [m for g in groups() for m in g.modules]
    module = next(
        (m for m in modules if names[0].startswith(m.removesuffix(".py").replace("/", ".") + ".")), None
    )
    if module is None:
        parser.error(f"{names[0]} is not a mutant of a core module")
    mutants = results_root(module) / "mutants"
    if not (mutants / "mutmut-stats.json").exists():
        parser.error("no mutmut run to take mutants from: run make mutation first")
    work: Path = args.workdir
    if not work.exists():
        shutil.copytree(mutants, work, ignore=shutil.ignore_patterns("*.meta", "__pycache__", "*.log"))
    shutil.rmtree(work / "tests")
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    survived = 0
    for name in names:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=work,
            env={**os.environ, "MUTANT_UNDER_TEST": name, "PYTHONPATH": str(work)},
            capture_output=True,
            text=True,
        )
        killed = result.returncode == 1
        survived += not killed
        print(f"{'killed  ' if killed else f'SURVIVED (exit {result.returncode})'}  {name}", flush=True)
    print(f"{len(names) - survived} of {len(names)} killed")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
