"""The bugs that issue 9 found unnoticed (and the stream's, issue 12), planted one at a time in
a copy of the tree.

Each must make the named tests fail. mutmut plants bugs of these kinds too, but not all of them
(it mutates function bodies only, so a keyword removed from a module-level table, or a hash input
reordered, is not among its mutants): this list keeps the ones that were seen slipping through.

    python -m tests.mutation.planted
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Planted:
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


PLANTED = (
    Planted(
        "receipt status machine: an equal-rank receipt moves a delivered message (early receipt)",
        "activities/early_receipts.py",
        "if received.rank > status.rank:",
        "if received.rank >= status.rank:",
        ("tests/store/test_receipt_ordering.py",),
    ),
    Planted(
        "receipt status machine: an equal-rank receipt moves a delivered message (webhook)",
        "activities/receipt_batch.py",
        "applied.append(receipt.status.rank > current.rank)",
        "applied.append(receipt.status.rank >= current.rank)",
        ("tests/store/test_receipt_ordering.py",),
    ),
    Planted(
        "receipt status machine: an equal-rank receipt signal moves a journey's delivered message",
        "workflows/lifecycle.py",
        "update.status.rank > record.status.rank",
        "update.status.rank >= record.status.rank",
        ("tests/workflows/test_receipt_signals.py",),
    ),
    Planted(
        "receipt status machine: an early receipt signal replaces a final send result",
        "workflows/journey.py",
        "early.status.rank > record.status.rank",
        "early.status.rank >= record.status.rank",
        ("tests/workflows/test_receipt_signals.py",),
    ),
    Planted(
        "quiet hours: marketing may go out at exactly 21:00",
        "nudge/quiet_hours.py",
        "return self.start <= local < self.end",
        "return self.start <= local <= self.end",
        ("tests/unit/test_quiet_hours.py",),
    ),
    Planted(
        'opt-out keywords: "CANCEL" removed',
        "nudge/keywords.py",
        '"UNSUBSCRIBE", "CANCEL", ',
        '"UNSUBSCRIBE", ',
        ("tests/unit/test_keywords.py",),
    ),
    Planted(
        "A/B buckets: the hash input reordered, so running customers change variant",
        "nudge/bucketing.py",
        'f"{experiment}:{customer_id}"',
        'f"{customer_id}:{experiment}"',
        ("tests/unit/test_bucketing.py",),
    ),
    # The stream out (issue 12): what its tests were written to catch.
    Planted(
        "stream: a failed delivery is given up instead of retried",
        "starter/stream/dispatcher.py",
        "next_attempt_at=self._clock() + timedelta(seconds=retry_in),",
        "delivered_at=self._clock(),",
        ("tests/stream/test_dispatcher.py", "tests/api/test_stream.py"),
    ),
    Planted(
        "stream: the number and the text go to every sink",
        "nudge/store/stream.py",
        "body=body | personal if sink.include_pii else dict(body),",
        "body=body | personal,",
        ("tests/store/test_stream.py",),
    ),
    Planted(
        "stream: a repeated receipt is published again",
        "activities/receipts.py",
        "if moved and message is not None and RECEIPT_KINDS.get(receipt.status) in kinds",
        "if message is not None and RECEIPT_KINDS.get(receipt.status) in kinds",
        ("tests/api/test_stream.py",),
    ),
    Planted(
        "stream: claims block on another gateway's rows instead of skipping them",
        "starter/stream/dispatcher.py",
        "query.with_for_update(skip_locked=True)",
        "query.with_for_update()",
        ("tests/stream/test_dispatcher.py",),
    ),
)


def copy_tree(destination: Path) -> None:
    """The working tree as it is (tracked and new files, edits included), without build output."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run(bug: Planted, tree: Path) -> bool:
    """Plant ``bug`` in ``tree``, run its tests, put the file back; True if the tests failed."""
    path = tree / bug.path
    original = path.read_text()
    if original.count(bug.old) != 1:
        raise SystemExit(f"{bug.path}: expected `{bug.old}` exactly once; update tests/mutation/planted.py")
    path.write_text(original.replace(bug.old, bug.new))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *bug.tests],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree)},
            capture_output=True,
            text=True,
        )
    finally:
        path.write_text(original)
    return result.returncode == 1


def main() -> int:
    survived = 0
    with tempfile.TemporaryDirectory(prefix="nudge-planted-") as folder:
        tree = Path(folder)
        copy_tree(tree)
        for bug in PLANTED:
            killed = run(bug, tree)
            survived += not killed
            print(f"{'killed  ' if killed else 'SURVIVED'}  {bug.what}  ({', '.join(bug.tests)})", flush=True)
    print(f"{len(PLANTED) - survived} of {len(PLANTED)} planted bugs killed")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
