"""``make mutation``: mutate the core with mutmut, then score each module against the target.

mutmut (pinned: this reads its result files) plants one small bug at a time in every function of
the modules listed under ``[tool.mutmut] only_mutate`` in pyproject.toml, and runs the tests that
reach that function. A mutant the tests fail on is *killed*; one they pass is *survived*.

Some mutants cannot change behaviour (an equivalent mutant: ``x[:8]`` on an 8-byte value, a log
line's wording). Each is listed in ``equivalent/<module>.toml`` beside this file with the mutated
line and a one-line reason; the report leaves them out of the score, and warns when a listed one no longer
matches (the code moved on, so the entry must be looked at again).

    python -m tests.mutation                 # incremental: mutate what changed, recheck survivors
    python -m tests.mutation --fresh         # from scratch (what a fresh clone does)
    python -m tests.mutation --only nudge/segments.py --only nudge/keywords.py
    python -m tests.mutation --report        # only print the table from the last run
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = ROOT / "mutants"
EQUIVALENTS = Path(__file__).with_name("equivalent")
"""One TOML file per module (``nudge.signing.toml``), each a list of ``[[equivalent]]`` entries."""
TARGET = 85.0

KILLED = {1, 3, 36, 24, -24, 152, 37}
"""mutmut exit codes that count as caught: a failing test, an internal error of pytest in the run
(an import the mutant broke), or the CPU limit (a mutant that loops)."""
LOST = {255, -1}
"""The worker died before it ran the tests (mutmut files this under timeout): run it again."""
SURVIVED = {0, 33, 5}
"""A mutant the tests passed, or one that no test reached (no tests: as bad as survived)."""


@dataclass
class ModuleScore:
    path: str
    killed: list[str] = field(default_factory=list)
    survived: list[str] = field(default_factory=list)
    equivalent: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @property
    def scored(self) -> int:
        return len(self.killed) + len(self.survived)

    @property
    def score(self) -> float:
        return 100.0 * len(self.killed) / self.scored if self.scored else 100.0


def core_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["only_mutate"])


def module_glob(path: str) -> str:
    """``nudge/segments.py`` -> ``nudge.segments.*``, mutmut's name for all its mutants."""
    return path.removesuffix(".py").replace("/", ".") + ".*"


def load_results(modules: Iterable[str]) -> dict[str, dict[str, int | None]]:
    results = {}
    for path in modules:
        meta = MUTANTS / (path + ".meta")
        if meta.exists():
            results[path] = json.loads(meta.read_text())["exit_code_by_key"]
    return results


def mutant_change(name: str, path: str) -> str:
    """The mutant in one line: its ``+`` lines, or the ``-`` lines it deletes (``- ...``)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    diff = get_diff_for_mutant(name, path=path).splitlines()
    added = [line[1:].strip() for line in diff if line.startswith("+") and not line.startswith("+++")]
    removed = [line[1:].strip() for line in diff if line.startswith("-") and not line.startswith("---")]
    if any(added):
        return " | ".join(added)
    return "- " + " | ".join(removed)


def load_equivalents() -> dict[str, tuple[str, str]]:
    """Mutant name -> (the mutated line it was judged on, why it cannot change behaviour)."""
    listed = {}
    for path in sorted(EQUIVALENTS.glob("*.toml")):
        for entry in tomllib.loads(path.read_text()).get("equivalent", []):
            listed[entry["mutant"]] = (entry["change"], entry["reason"])
    return listed


def score(results: dict[str, dict[str, int | None]]) -> tuple[list[ModuleScore], list[str]]:
    equivalents = load_equivalents()
    warnings = []
    scores = []
    seen: set[str] = set()
    for path, codes in results.items():
        module = ModuleScore(path)
        for name, code in sorted(codes.items()):
            if code is None or code in LOST:
                module.unchecked.append(name)
            elif name in equivalents and code in SURVIVED:
                seen.add(name)
                change, _ = equivalents[name]
                if mutant_change(name, path) == change:
                    module.equivalent.append(name)
                else:
                    warnings.append(f"stale equivalent {name}: listed as `{change}`, now a different mutant")
                    module.survived.append(name)
            elif code in KILLED:
                module.killed.append(name)
                if name in equivalents:
                    seen.add(name)
                    warnings.append(f"listed as equivalent but killed, so not equivalent: {name}")
            else:
                module.survived.append(name)
        scores.append(module)
    for name in sorted(set(equivalents) - seen):
        if any(fnmatch.fnmatch(name, module_glob(p)) for p in results):
            warnings.append(f"listed as equivalent but no longer generated: {name}")
    return scores, warnings


def print_report(scores: list[ModuleScore], warnings: list[str], *, show_survivors: bool = True) -> bool:
    width = max(len(s.path) for s in scores) if scores else 10
    print()
    print(f"{'module':<{width}}  mutants  killed  survived  equivalent  score")
    ok = True
    for s in scores:
        total = len(s.killed) + len(s.survived) + len(s.equivalent) + len(s.unchecked)
        mark = (
            ""
            if s.score >= TARGET and not s.unchecked
            else "  < target"
            if s.score < TARGET
            else "  unchecked"
        )
        ok &= s.score >= TARGET and not s.unchecked
        print(
            f"{s.path:<{width}}  {total:>7}  {len(s.killed):>6}  {len(s.survived):>8}  "
            f"{len(s.equivalent):>10}  {f'{s.score:5.1f}%' if s.scored else '    -'}{mark}"
        )
    killed = sum(len(s.killed) for s in scores)
    scored = sum(s.scored for s in scores)
    print(
        f"{'all':<{width}}  {'':>7}  {killed:>6}  {scored - killed:>8}  "
        f"{sum(len(s.equivalent) for s in scores):>10}  {100 * killed / max(scored, 1):5.1f}%"
    )
    if show_survivors:
        for s in scores:
            for name in s.survived:
                print(f"survived  {name}: {mutant_change(name, s.path)}")
    for w in warnings:
        print(f"warning   {w}")
    print(
        f"\ntarget: {TARGET:.0f}% of mutants killed in every module; "
        f"{'met' if ok else 'NOT met'} ({len(scores)} modules)"
    )
    return ok


def run_mutmut(names: list[str]) -> int:
    """Run mutmut on ``names`` (all changed mutants if empty); its own output goes to a log."""
    MUTANTS.mkdir(exist_ok=True)
    log = MUTANTS / "mutmut-run.log"
    command = [sys.executable, "-m", "mutmut", "run", *names]
    print(f"mutmut run {' '.join(names) or '(incremental)'}; its output: {log.relative_to(ROOT)}", flush=True)
    started = time.monotonic()
    with log.open("a") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        while process.poll() is None:
            time.sleep(15)
            done = sum(
                code is not None for codes in load_results(core_modules()).values() for code in codes.values()
            )
            print(f"  {time.monotonic() - started:6.0f} s  {done} mutants have a result", flush=True)
    return process.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="delete mutants/ first and mutate everything")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATH",
        help="mutate and report only this module (repeatable), e.g. nudge/segments.py",
    )
    parser.add_argument("--report", action="store_true", help="only print the table of the last run")
    parser.add_argument(
        "--no-recheck",
        action="store_true",
        help="trust earlier survivors instead of running them again against today's tests",
    )
    args = parser.parse_args(argv)

    os.chdir(ROOT)  # mutmut reads pyproject.toml and mutants/ from the working directory
    modules = core_modules()
    unknown = [p for p in args.only if p not in modules]
    if unknown:
        parser.error(f"not a core module (see [tool.mutmut] only_mutate): {', '.join(unknown)}")
    chosen = args.only or modules
    if args.fresh and MUTANTS.exists():
        shutil.rmtree(MUTANTS)
    first_run = not any(load_results(modules).values())
    if not args.report:
        code = run_mutmut([module_glob(p) for p in args.only])
        if code != 0:
            print(f"mutmut run failed (exit {code}); see {MUTANTS / 'mutmut-run.log'}", file=sys.stderr)
            return code
        recheck = not (args.only or args.no_recheck or first_run)  # --only reran its modules whole
        again = (SURVIVED if recheck else set()) | LOST
        stale = [n for codes in load_results(chosen).values() for n, c in codes.items() if c in again]
        if stale:
            print(
                f"running {len(stale)} mutants again: earlier survivors, and any whose worker died",
                flush=True,
            )
            code = run_mutmut(stale)
            if code != 0:
                return code
    results = load_results(chosen)
    missing = [p for p in chosen if p not in results]
    if missing:
        print(f"no results yet for: {', '.join(missing)}", file=sys.stderr)
    scores, warnings = score(results)
    return 0 if print_report(scores, warnings) and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
