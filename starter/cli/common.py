"""What the ``nudge`` commands share: the consoles, failing with a message, talking to the gateway,
and printing workflows with their ids whole."""

from __future__ import annotations

import shutil
from collections.abc import Collection, Sequence
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from nudge.settings import Settings, get_settings, load_settings

console = Console()
if not console.is_terminal:
    # Logs and CI output: keep the summary table readable, unless COLUMNS asks for a width.
    console = Console(width=shutil.get_terminal_size((160, 24)).columns)
err = Console(stderr=True, soft_wrap=True)  # error lines stay whole, for grep and editors


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def gateway_base(url: str | None) -> str:
    return (url or get_settings().gateway_url).rstrip("/")


GatewayOpt = Annotated[
    str | None,
    typer.Option("--gateway", help="Gateway URL \\[default: NUDGE_PUBLIC_URL or http://127.0.0.1:8000]."),
]


def settings_now() -> Settings:
    """The settings as the environment has them when a command runs, not the process's singleton:
    a test (or a program embedding the CLI) runs many commands in one process, each with its own
    environment (``NUDGE_API_KEY``, ``NUDGE_STATE_DIR``...)."""
    return load_settings()


def auth_headers() -> dict[str, str]:
    """The API key the CLI sends: ``NUDGE_API_KEY``, else the one ``nudge up`` wrote to the state dir."""
    key = settings_now().client_api_key()
    return {"Authorization": f"Bearer {key}"} if key else {}


def gateway_request(method: str, path: str, gateway_url: str | None, **kwargs: Any) -> httpx.Response:
    """One request to the gateway with the CLI's API key; an unreachable gateway exits 1."""
    base = gateway_base(gateway_url)
    try:
        return httpx.request(
            method, f"{base}{path}", timeout=kwargs.pop("timeout", 30), headers=auth_headers(), **kwargs
        )
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the gateway at {base} ({exc}); is `make run` up?") from exc


def check_answer(response: httpx.Response) -> None:
    """Exit on a refusal: 2 with the gateway's reason for a 4xx (and how to get a key, for a 401),
    1 for a 5xx."""
    if response.status_code < 400:
        return
    hint = ""
    if response.status_code == 401:
        hint = "; set NUDGE_API_KEY to a key from `nudge keys create` (`make run` makes a local one)"
    code = 2 if response.status_code < 500 else 1
    raise fail(f"{refusal_detail(response)} ({response.status_code}){hint}", code=code)


def call_gateway(
    method: str, path: str, gateway_url: str | None, *, missing_ok: bool = False, **kwargs: Any
) -> Any:
    """One request to the gateway, its JSON answer; an unreachable gateway (or its 5xx) exits 1,
    a refusal (4xx) exits 2 with the gateway's reason.

    Args:
        missing_ok: answer None for a 404 (an unknown customer, say) instead of exiting.
    """
    response = gateway_request(method, path, gateway_url, **kwargs)
    if missing_ok and response.status_code == 404:
        return None
    check_answer(response)
    return response.json()


def refusal_detail(response: httpx.Response) -> str:
    """The gateway's reason: its ``detail``, one line per field for a validation error."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(detail, list):  # request validation: one line per field
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}" for d in detail)
    return str(detail)


def print_workflows(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    wrap: Collection[str] = (),
    out: Console | None = None,
) -> None:
    """Print rows whose first cell is a workflow id, each id whole on one line at any width: ops
    paste them into ``temporal workflow show -w``.

    A table when the console is wide enough for every cell on one line, except in the ``wrap``
    columns, which may break between words; otherwise one block per row, the id on a line of its
    own above the other cells.

    Args:
        headers: the column headers, the workflow id's first.
        rows: the cells, in the order of ``headers``.
        wrap: headers of the columns whose cells may take several lines (free text).
        out: the console \\[default: the CLI's stdout].
    """
    out = out or console
    columns = [[Text(header), *(Text(row[index]) for row in rows)] for index, header in enumerate(headers)]
    widths = _column_widths(out, columns, wrap=[header in wrap for header in headers])
    if widths is not None:
        table = Table()
        for column, width in zip(columns, widths, strict=True):
            table.add_column(column[0], width=width, overflow="fold")
        for cells in zip(*(column[1:] for column in columns), strict=True):
            table.add_row(*cells)
        out.print(table)
        return
    for row in rows:
        out.print(row[0], soft_wrap=True, markup=False, highlight=False)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for header, value in zip(headers[1:], row[1:], strict=True):
            if value:
                grid.add_row(header, Text(value))
        out.print(Padding(grid, (0, 0, 1, 2), expand=False))


def _column_widths(
    out: Console, columns: Sequence[Sequence[Text]], *, wrap: Sequence[bool]
) -> list[int] | None:
    """Content widths that fit the console: a column that may wrap at least as wide as its longest
    word, growing toward its longest line; any other as wide as its longest line. None when that
    does not fit. Fixed widths keep rich from squeezing a column (and cutting an id)."""
    available = out.width - 3 * len(columns) - 1  # a border and a space each side of every cell
    measures = [[Measurement.get(out, out.options, cell) for cell in column] for column in columns]
    most = [max(m.maximum for m in column) for column in measures]
    least = [
        max(m.minimum for m in column) if wraps else widest
        for column, wraps, widest in zip(measures, wrap, most, strict=True)
    ]
    if sum(least) > available:
        return None
    if sum(most) <= available:
        return most
    spare, growth = available - sum(least), [hi - lo for lo, hi in zip(least, most, strict=True)]
    return [lo + spare * grow // sum(growth) for lo, grow in zip(least, growth, strict=True)]
