"""``make mutation``: mutate the core with mutmut, then score each module against the target.

mutmut (pinned: this reads its result files) plants one small bug at a time in every function of
the core modules and runs, for each mutant, the tests that reached the mutated function. A mutant
the tests fail on is *killed*; one they pass is *survived*.

The modules come in groups (``[tool.nudge.mutation]`` in pyproject.toml), each with the tests that
judge it: a pure module by its unit tests, the store's services by the store tests, the send gate
by the activity tests. A mutant must be caught by its own module's tests, not by some e2e run
that happens to pass through it; and mutmut then runs a few hundred tests per mutant, not all.
Each group runs in a copy of the tree under ``.mutation/<group>/`` (mutmut works in ``./mutants``
of its working directory and reads ``./pyproject.toml``), kept between runs so that a rerun only
mutates what changed.

Some mutants cannot change behaviour (an equivalent mutant: ``x[:8]`` on an 8-byte value). Each is
listed in ``equivalent/<module>.toml`` beside this file with the mutated line and a one-line
reason; the report leaves them out of the score, and warns when a listed one no longer matches.

    python -m tests.mutation                 # incremental: mutate what changed, recheck survivors
    python -m tests.mutation --fresh         # from scratch (what a fresh clone does)
    python -m tests.mutation --only nudge/segments.py --only nudge/keywords.py
    python -m tests.mutation --report        # only print the table from the last run
    python -m tests.mutation --recheck       # run the last run's survivors again (after new tests)
    python -m tests.mutation --group gate    # one group, incrementally (mutants decided are kept)

``--only`` hands mutmut the module's mutants by name, and mutmut then runs every one of them
again; ``--group`` lets it skip those it has already decided.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".mutation"
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


@dataclass(frozen=True)
class Group:
    name: str
    modules: tuple[str, ...]
    tests: tuple[str, ...]

    @property
    def root(self) -> Path:
        return WORK / self.name

    @property
    def mutants(self) -> Path:
        return self.root / "mutants"


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


def groups() -> list[Group]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["nudge"]["mutation"]
    return [Group(name, tuple(g["modules"]), tuple(g["tests"])) for name, g in config.items()]


def group_of(path: str) -> Group:
    return next(g for g in groups() if path in g.modules)


def module_glob(path: str) -> str:
    """``nudge/segments.py`` -> ``nudge.segments.*``, mutmut's name for all its mutants."""
    return path.removesuffix(".py").replace("/", ".") + ".*"


def results_root(path: str) -> Path:
    """Where ``path``'s results are: its group's folder, or a plain ``mutmut run`` in the tree."""
    group = group_of(path)
    if (group.mutants / (path + ".meta")).exists() or not (ROOT / "mutants" / (path + ".meta")).exists():
        return group.root
    return ROOT


def load_results(modules: list[str]) -> dict[str, dict[str, int | None]]:
    results = {}
    for path in modules:
        meta = results_root(path) / "mutants" / (path + ".meta")
        if meta.exists():
            results[path] = json.loads(meta.read_text())["exit_code_by_key"]
    return results


@contextlib.contextmanager
def inside(folder: Path) -> Iterator[None]:
    """mutmut reads ``pyproject.toml`` and ``mutants/`` from the working directory."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def mutant_change(name: str, path: str) -> str:
    """The mutant in one line: its ``+`` lines, or the ``-`` lines it deletes (``- ...``)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    with inside(results_root(path)):
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
                seen.add(name)
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
        if any(fnmatch.fnmatchcase(name, module_glob(p)) for p in results):
            warnings.append(f"listed as equivalent but no longer a survivor: {name}")
    return scores, warnings


def print_report(scores: list[ModuleScore], warnings: list[str], *, show_survivors: bool = True) -> bool:
    width = max([len(s.path) for s in scores] + [6])
    print()
    print(f"{'module':<{width}}  mutants  killed  survived  equivalent  unchecked  score")
    ok = True
    for s in scores:
        total = len(s.killed) + len(s.survived) + len(s.equivalent) + len(s.unchecked)
        met = s.score >= TARGET and not s.unchecked
        ok &= met
        mark = "" if met else "  < target" if s.score < TARGET else "  (unchecked)"
        shown = f"{s.score:5.1f}%" if s.scored else "    -"
        print(
            f"{s.path:<{width}}  {total:>7}  {len(s.killed):>6}  {len(s.survived):>8}  "
            f"{len(s.equivalent):>10}  {len(s.unchecked):>9}  {shown}{mark}"
        )
    killed = sum(len(s.killed) for s in scores)
    scored = sum(s.scored for s in scores)
    print(
        f"{'all':<{width}}  {'':>7}  {killed:>6}  {scored - killed:>8}  "
        f"{sum(len(s.equivalent) for s in scores):>10}  {sum(len(s.unchecked) for s in scores):>9}  "
        f"{100 * killed / max(scored, 1):5.1f}%"
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


def prepare(group: Group) -> None:
    """Lay today's tree into the group's folder (keeping its mutants/) with the group's config."""
    from tests.mutation.planted import copy_tree

    group.root.mkdir(parents=True, exist_ok=True)
    for child in group.root.iterdir():
        if child.name != "mutants":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    copy_tree(group.root)
    pyproject = (group.root / "pyproject.toml").read_text()
    # The shared [tool.mutmut] options, with this group's modules and tests (lists as JSON are TOML).
    pyproject = pyproject.replace(
        "[tool.mutmut]\n",
        "[tool.mutmut]\n"
        f"only_mutate = {json.dumps(list(group.modules))}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(list(group.tests))}\n",
        1,
    )
    (group.root / "pyproject.toml").write_text(pyproject)


def run_mutmut(group: Group, names: list[str]) -> int:
    """Run mutmut on ``names`` (all changed mutants if empty); its own output goes to a log."""
    group.mutants.mkdir(exist_ok=True)
    log = group.mutants / "mutmut-run.log"
    shown = " ".join(names) if len(names) < 6 else f"{len(names)} mutants or modules"
    print(f"[{group.name}] mutmut run {shown or '(incremental)'}; log: {log.relative_to(ROOT)}", flush=True)
    started = time.monotonic()
    with log.open("a") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mutmut", "run", *names],
            cwd=group.root,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        while process.poll() is None:
            time.sleep(15)
            metas = [group.mutants / (p + ".meta") for p in group.modules]
            codes = [
                c for m in metas if m.exists() for c in json.loads(m.read_text())["exit_code_by_key"].values()
            ]
            done = sum(c is not None for c in codes)
            print(
                f"  [{group.name}] {time.monotonic() - started:6.0f} s  {done}/{len(codes)} mutants",
                flush=True,
            )
    return process.returncode


def forget_stale_coverage(group: Group) -> None:
    """mutmut keeps which tests reach which function from its first run, and runs a mutant only
    against those: a test written since would never be run against it. Drop that map whenever
    the tests change, so that mutmut collects it again."""
    digest = hashlib.sha256()
    for path in sorted((group.root / "tests").rglob("*.py")):
        digest.update(str(path.relative_to(group.root)).encode() + b"\0" + path.read_bytes())
    stamp = group.mutants / "tests.sha256"
    if not stamp.exists() or stamp.read_text() != digest.hexdigest():
        (group.mutants / "mutmut-stats.json").unlink(missing_ok=True)
        group.mutants.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest.hexdigest())


def run_group(group: Group, only: list[str], *, recheck: bool) -> int:
    prepare(group)
    forget_stale_coverage(group)
    first_run = not any((group.mutants / (p + ".meta")).exists() for p in group.modules)
    code = run_mutmut(group, [module_glob(p) for p in only])
    if code != 0:
        print(f"mutmut run failed (exit {code}); see {group.mutants / 'mutmut-run.log'}", file=sys.stderr)
        return code
    # --only reran its modules whole; a first run has nothing stale to look at again.
    again = (SURVIVED if recheck and not only and not first_run else set()) | LOST
    stale = [
        n for m in load_results(only or list(group.modules)).values() for n, c in m.items() if c in again
    ]
    if stale:
        print(f"[{group.name}] running {len(stale)} mutants again: earlier survivors, or their worker died")
        code = run_mutmut(group, stale)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="forget earlier runs and mutate everything")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATH",
        help="mutate and report only this module (repeatable), e.g. nudge/segments.py",
    )
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this group (repeatable), incrementally: mutants already decided are kept",
    )
    parser.add_argument("--report", action="store_true", help="only print the table of the last run")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="run only the last run's survivors (and lost mutants) again, against today's tests",
    )
    parser.add_argument(
        "--no-recheck",
        action="store_true",
        help="trust earlier survivors instead of running them again against today's tests",
    )
    args = parser.parse_args(argv)

    modules = [m for g in groups() for m in g.modules]
    unknown = [p for p in args.only if p not in modules]
    if unknown:
        parser.error(f"not a core module (see [tool.nudge.mutation] in pyproject.toml): {', '.join(unknown)}")
    unknown_groups = [g for g in args.group if g not in {group.name for group in groups()}]
    if unknown_groups:
        parser.error(f"no such group (see [tool.nudge.mutation]): {', '.join(unknown_groups)}")
    chosen = args.only or [m for g in groups() if not args.group or g.name in args.group for m in g.modules]
    if args.fresh and WORK.exists():
        shutil.rmtree(WORK)
    if args.recheck and not args.report:
        for group in groups():
            mine = [p for p in chosen if p in group.modules]
            again = [n for m in load_results(mine).values() for n, c in m.items() if c in SURVIVED | LOST]
            if again:
                prepare(group)
                forget_stale_coverage(group)
                if (code := run_mutmut(group, again)) != 0:
                    return code
    elif not args.report:
        for group in groups():
            if args.group and group.name not in args.group:
                continue
            only = [p for p in args.only if p in group.modules]
            if args.only and not only:
                continue
            code = run_group(group, only, recheck=not args.no_recheck)
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
