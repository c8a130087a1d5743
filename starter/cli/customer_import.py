"""The upload behind ``nudge customers import``: a CSV file sent to an import job, chunk by chunk,
under a progress bar (rows, rows per second, ETA), and the report of the rows rejected.

Why chunks to a job rather than batches of profiles: each batch used to be stored on its own, so
an invalid row stopped the import with the earlier batches imported, and Ctrl-C did the same. Here
the gateway stages the chunks and imports nothing until the commit, which merges them all in one
transaction; an error or Ctrl-C before it aborts the job, and ``customer`` is as it was.

Two chunks are in flight at once, so that the gateway checks one while this process reads and
encodes the next. A chunk is at most ``rows`` rows and about ``CHUNK_BYTES`` of JSON, well under
the gateway's body limit (``NUDGE_MAX_BODY_BYTES``, 1 MiB by default).
"""

from __future__ import annotations

import csv
import json
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from nudge.errors import InvalidInput, NudgeError
from starter.cli.common import console, err

CHUNK_BYTES = 384 * 1024
IN_FLIGHT = 2
ACTOR = "nudge customers import"
TIMEOUT = httpx.Timeout(30.0, read=300.0)
COMMIT_TIMEOUT = httpx.Timeout(30.0, read=3600.0)
"""A million rows merge in well under a minute; the read timeout only guards a hung gateway."""


class UnreadableFile(InvalidInput):
    """The CSV cannot be imported at all (no header, no ``id`` column)."""


class GatewayRefused(NudgeError):
    """The gateway refused or failed a step of the import; ``response`` is its answer, if any."""

    def __init__(self, message: str, *, response: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


@dataclass(frozen=True)
class Rejected:
    """A row that is not imported: its line, id, reason, and its values as read."""

    line: int
    customer_id: str
    reason: str
    values: list[str]


@dataclass
class Uploaded:
    """What the upload did: rows staged, and the rows rejected (by the gateway, or here)."""

    staged: int = 0
    rejects: list[Rejected] = field(default_factory=list)


def count_rows(path: Path) -> int:
    """The rows after the header, counted as lines (a quoted value spanning lines counts twice:
    only the progress bar's total, which the end corrects)."""
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(0, lines + (last != b"\n") - 1)


def read_header(handle: IO[str], path: Path) -> tuple[list[str], Iterator[list[str]], Callable[[], int]]:
    """The header row, the reader of the rows after it, and the line the reader is at.

    Raises:
        UnreadableFile: the file is empty, or its header has no ``id`` column.
    """
    reader = csv.reader(handle)
    header = next(reader, None)
    if not header:
        raise UnreadableFile(f"{path}: the file is empty: the first line must be a header row")
    if "id" not in header:
        raise UnreadableFile(f"{path}: the header row must include an 'id' column")
    return header, reader, lambda: reader.line_num


def chunks(
    reader: Iterator[list[str]], line_num: Callable[[], int], *, rows: int, local: list[Rejected]
) -> Iterator[tuple[list[int], list[list[str]]]]:
    """The rows in chunks of (lines, values), each line the one its row starts on. Blank lines are
    skipped (as ``csv.DictReader`` does); a row holding NUL is rejected here, into ``local``: the
    gateway refuses any request that carries one."""
    lines: list[int] = []
    values: list[list[str]] = []
    size, start = 0, line_num() + 1
    for row in reader:
        line, start = start, line_num() + 1
        if not row:
            continue
        if any("\x00" in value for value in row):
            customer_id = row[0].replace("\x00", "") if row else ""
            local.append(Rejected(line, customer_id, "contains a NUL character (U+0000)", row))
            continue
        lines.append(line)
        values.append(row)
        size += 8 + sum(len(v) if v.isascii() else 3 * len(v) for v in row) + 3 * len(row)
        if len(values) >= rows or size >= CHUNK_BYTES:
            yield lines, values
            lines, values, size = [], [], 0
    if values:
        yield lines, values


class ImportJob:
    """One import on the gateway: open, upload, commit or abort (each a request with the API key)."""

    def __init__(self, client: httpx.Client, header: list[str]) -> None:
        self._client = client
        self._header = header
        self.id: str | None = None

    def open(self) -> None:
        answer = self._call("POST", "/v1/customer-imports", json={"header": self._header, "actor": ACTOR})
        self.id = answer["id"]

    def upload(
        self,
        batches: Iterator[tuple[list[int], list[list[str]]]],
        *,
        done: Uploaded,
        progress: Callable[[int], None],
    ) -> None:
        """Upload every chunk, ``IN_FLIGHT`` at a time; each answer's rejects go into ``done``
        (in line order) and its size to ``progress``."""
        with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="import") as pool:
            pending: deque[tuple[Future[Any], list[int], list[list[str]]]] = deque()
            try:
                for lines, values in batches:
                    if len(pending) >= IN_FLIGHT:
                        self._settle(*pending.popleft(), done=done, progress=progress)
                    pending.append((pool.submit(self._send, lines, values), lines, values))
                while pending:
                    self._settle(*pending.popleft(), done=done, progress=progress)
            except BaseException:
                # Ctrl-C or a refusal: what is still queued is never sent (the job is aborted next).
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    def commit(self) -> dict[str, Any]:
        return self._call("POST", f"/v1/customer-imports/{self.id}:commit", timeout=COMMIT_TIMEOUT)

    def abort(self) -> dict[str, Any]:
        return self._call("POST", f"/v1/customer-imports/{self.id}:abort")

    def _send(self, lines: list[int], values: list[list[str]]) -> dict[str, Any]:
        body = json.dumps({"lines": lines, "rows": values}, ensure_ascii=False, separators=(",", ":"))
        return self._call(
            "POST",
            f"/v1/customer-imports/{self.id}/rows",
            content=body.encode(),
            headers={"content-type": "application/json"},
        )

    @staticmethod
    def _settle(
        future: Future[Any],
        lines: list[int],
        values: list[list[str]],
        *,
        done: Uploaded,
        progress: Callable[[int], None],
    ) -> None:
        answer = future.result()
        by_line = dict(zip(lines, values, strict=True))
        done.staged += answer["staged"]
        done.rejects.extend(
            Rejected(r["line"], r["customer_id"], r["reason"], by_line.get(r["line"], []))
            for r in answer["rejected"]
        )
        progress(len(lines))

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayRefused(f"cannot reach the gateway at {self._client.base_url} ({exc})") from exc
        if response.status_code >= 400:
            raise GatewayRefused(f"{method} {path}", response=response)
        return response.json()


def write_rejects(path: Path, header: list[str], rejects: list[Rejected]) -> None:
    """The rejected rows as a CSV: ``line`` and ``reason``, then the row's own columns, so that
    it can be fixed and imported again (once those two columns are deleted)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "reason", *header])
        for reject in sorted(rejects, key=lambda r: r.line):
            writer.writerow([reject.line, reject.reason, *(v.replace("\x00", "") for v in reject.values)])


class RowsPerSecond(ProgressColumn):
    """The import's rate, in rows per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="progress.data.speed")


def upload_with_progress(
    job: ImportJob, batches: Iterator[tuple[list[int], list[list[str]]]], total: int, *, done: Uploaded
) -> list[Rejected]:
    """Every chunk to the job, under a progress bar with the rows, their rate and the ETA; the
    rows the gateway rejected."""
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        RowsPerSecond(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("import", total=total)
        job.upload(batches, done=done, progress=lambda rows: progress.advance(task, rows))
        progress.update(task, total=progress.tasks[0].completed)  # the count took lines for rows
    return done.rejects


def list_rejects(file: Path, rejects: list[Rejected], *, shown: int = 20) -> None:
    """The first rejected rows on stderr, as ``FILE:LINE: ID: REASON`` (no phone number)."""
    for reject in rejects[:shown]:
        err.print(
            f"{file}:{reject.line}: {reject.customer_id}: {reject.reason}", markup=False, highlight=False
        )
    if len(rejects) > shown:
        err.print(f"... and {len(rejects) - shown} more", highlight=False)
