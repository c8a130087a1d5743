"""``nudge customers ...``: customer profiles, through the gateway's API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import typer

from nudge.phone import mask
from starter.cli.common import (
    GatewayOpt,
    auth_headers,
    call_gateway,
    check_answer,
    console,
    err,
    fail,
    gateway_base,
)
from starter.cli.customer_import import (
    TIMEOUT,
    GatewayRefused,
    ImportJob,
    Rejected,
    UnreadableFile,
    Uploaded,
    chunks,
    count_rows,
    list_rejects,
    read_header,
    upload_with_progress,
    write_rejects,
)

customers_app = typer.Typer(help="Manage customer profiles.", no_args_is_help=True)


@customers_app.command("import")
def import_customers(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV with a header row.")
    ],
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            dir_okay=False,
            help="Where to write the rejected rows, with line and reason \\[default: FILE.rejects.csv].",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Import nothing if any row is rejected (all or nothing)."),
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Rows per request (also capped at about 384 KiB).")
    ] = 5000,
    gateway_url: GatewayOpt = None,
) -> None:
    """Import customers from a CSV file, all at once: nothing is imported until every row is in.

    Columns: id, name, phone, lifecycle_stage, country, timezone (only id is required; other
    columns become attributes). Marketing consent: consent_source (where it was given),
    consent_text (the wording shown) and consent_at (ISO time); it is recorded only for customers
    with no consent on record yet. A customer id on several lines: the last line's profile wins.

    The gateway checks every row (the id, the phone, read in the row's country or
    NUDGE_DEFAULT_REGION and stored in E.164, the time zone, the consent). A row that fails is
    rejected with its reason and not imported; the valid rows are, unless [bold]--strict[/]. The
    rejected rows are listed and written, with their line and reason, to [bold]--rejects[/].

    The rows are staged on the gateway first and imported in one transaction at the end, so an
    error or Ctrl-C before then imports nothing (Ctrl-C during that transaction cannot stop it:
    the message says so, and how to see its outcome).

    Exit status: 0 when every row was imported; 2 when rows were rejected (without --strict the
    others were imported), or the file or a request was refused; 1 when the gateway failed;
    130 when interrupted.
    """
    rejects_path = rejects or file.with_name(f"{file.stem}.rejects.csv")
    total = count_rows(file)
    done = Uploaded()
    local: list[Rejected] = []
    with (
        file.open(newline="", encoding="utf-8-sig") as handle,
        httpx.Client(base_url=gateway_base(gateway_url), headers=auth_headers(), timeout=TIMEOUT) as client,
    ):
        try:
            header, reader, line_num = read_header(handle, file)
        except UnreadableFile as exc:
            raise fail(str(exc), code=2) from exc
        job = ImportJob(client, header)
        _step(job.open, job=None)
        committing = False
        try:
            try:
                every = upload_with_progress(
                    job, chunks(reader, line_num, rows=batch_size, local=local), total, done=done
                )
            except GatewayRefused as exc:
                _abandon(job, "the gateway refused a chunk")
                raise _refusal(exc) from exc
            every = sorted([*every, *local], key=lambda r: r.line)
            if every:
                write_rejects(rejects_path, header, every)
                list_rejects(file, every)
            if strict and every:
                _step(job.abort, job=job)
                raise fail(
                    f"--strict: {_many(len(every), 'row')} rejected, so nothing was imported "
                    f"(written to {rejects_path})",
                    code=2,
                )
            committing = True
            with console.status(f"importing {_many(done.staged, 'staged row')} in one transaction..."):
                committed = _step(job.commit, job=job)
        except KeyboardInterrupt:
            _abandon(
                job, "interrupted during the commit" if committing else "interrupted", committing=committing
            )
            raise typer.Exit(130) from None
    created, updated = committed["created"], committed["updated"]
    console.print(
        f"imported {_many(created + updated, 'customer')} ({created} new, {updated} updated); "
        f"consent recorded for {committed['consents']}"
    )
    if every:
        err.print(
            f"[yellow]{_many(len(every), 'row')} rejected[/] and not imported: written to {rejects_path}",
            highlight=False,
        )
        raise typer.Exit(2)


def _many(count: int, thing: str) -> str:
    return f"{count} {thing}" if count == 1 else f"{count} {thing}s"


def _step(call: Callable[[], Any], *, job: ImportJob | None) -> Any:
    """One request of the import; a refusal exits (aborting the job, if one is open)."""
    try:
        return call()
    except GatewayRefused as exc:
        if job is not None:
            _abandon(job, "the gateway refused a step")
        raise _refusal(exc) from exc


def _refusal(exc: GatewayRefused) -> typer.Exit:
    """Exit as ``check_answer`` does: 2 with the reason for a 4xx, 1 for a 5xx or no answer."""
    if exc.response is None:
        return fail(f"{exc}; is `make run` up?")
    try:
        check_answer(exc.response)
    except typer.Exit as refused:
        return refused
    return fail(str(exc))


def _abandon(job: ImportJob, why: str, *, committing: bool = False) -> None:
    """Abort the job after Ctrl-C or a refusal, and say what became of the rows. Once its commit
    was asked for, the gateway finishes it whatever the CLI does: an abort that gets no answer
    leaves the outcome unknown, and the message says where to read it."""
    unknown = (
        f"{why}: the gateway may still be importing {job.id}; see GET /v1/customer-imports/{job.id} "
        "for whether it was committed"
    )
    try:
        job.abort()
    except GatewayRefused as exc:
        if exc.response is not None and exc.response.status_code == 409:
            err.print(f"{why}: the import {job.id} had already been committed: its rows are imported")
            return
        if committing:
            err.print(unknown)
            return
        err.print(
            f"{why}: could not abort the import {job.id} ({exc}); nothing was imported, and its staged "
            "rows are discarded within an hour"
        )
        return
    except KeyboardInterrupt:
        err.print(
            unknown
            if committing
            else f"{why}: nothing was imported; the staged rows are discarded within an hour"
        )
        return
    err.print(f"{why}: the import was aborted and nothing was imported")


@customers_app.command("add")
def add_customer(
    customer: Annotated[str, typer.Argument(help="Customer id, as your services send it in events.")],
    phone: Annotated[
        str,
        typer.Option(help="Mobile number: E.164 (+8613800138000), or national and read in --country."),
    ],
    name: Annotated[str | None, typer.Option(help="Name, for ${name} in templates.")] = None,
    country: Annotated[
        str | None,
        typer.Option(
            help="Country code, e.g. CN; a national --phone is read in it \\[default: NUDGE_DEFAULT_REGION]."
        ),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone for quiet hours, e.g. Asia/Shanghai.")
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="Language of the template variants sent to them, e.g. zh.")
    ] = None,
    lifecycle_stage: Annotated[str, typer.Option(help="Lifecycle stage, as segments read it.")] = "new",
    consent: Annotated[
        bool, typer.Option("--consent", help="Record their consent to marketing SMS (marketing needs it).")
    ] = False,
    consent_source: Annotated[
        str | None,
        typer.Option(help="With --consent: where it was given, e.g. checkout_form \\[default: cli]."),
    ] = None,
    consent_text: Annotated[str, typer.Option(help="With --consent: the wording they agreed to.")] = "",
    gateway_url: GatewayOpt = None,
) -> None:
    """Add one customer, or replace their profile, with their phone number and consent.

    The number is stored in E.164; an invalid one is refused (exit 2) with the gateway's reason.
    Replacing a profile clears what is not given again; consent already on record is kept
    (change it with [bold]nudge consent grant|withdraw[/]).

    Examples:
    [bold]nudge customers add c42 --phone +8613800138000 --consent --consent-source checkout_form[/]
    [bold]nudge customers add c43 --phone 13800138043 --country CN --timezone Asia/Shanghai --language zh[/]
    """
    if not consent and (consent_source or consent_text):
        raise fail("--consent-source and --consent-text describe a consent: add --consent", code=2)
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # `Asia` is a folder; a long name, too long
            raise fail(
                f"--timezone {timezone!r} is not an IANA time zone, e.g. Asia/Shanghai", code=2
            ) from None
    body: dict[str, Any] = {
        "id": customer,
        "name": name,
        "phone": phone,
        "lifecycle_stage": lifecycle_stage,
        "country": country.upper() if country else None,
        "timezone": timezone,
        "attributes": {"language": language} if language else {},
    }
    if consent:
        source = consent_source or "cli"
        body["consent"] = {"source": source, "text": consent_text, "actor": "nudge customers add"}
    path = f"/v1/customers/{quote(customer, safe='')}"
    # Consent with a profile is recorded only when none is on record: a withdrawal must stand.
    before = call_gateway("GET", f"{path}/consent", gateway_url, missing_ok=True) if consent else None
    call_gateway("PUT", path, gateway_url, json=body)
    stored = call_gateway("GET", path, gateway_url)
    where = ", ".join(v for v in (stored["country"], stored["timezone"], language) if v)
    console.print(f"customer {customer} saved: {mask(stored['phone'])}" + (f" ({where})" if where else ""))
    record = call_gateway("GET", f"{path}/consent", gateway_url)
    current = next(iter(record["current"]), None)
    if current is None:
        console.print(
            f"[yellow]no consent on record[/]: marketing is not sent to {customer} "
            "(add --consent, or run nudge consent grant)"
        )
        return
    state = "granted" if current["granted"] else "withdrawn"
    console.print(f"marketing consent: {state} ({current['source']})")
    if before and before["current"]:
        err.print(
            f"[yellow]note:[/] the consent already on record for {customer} is kept; "
            f"if they agreed again, run nudge consent grant {customer} --source ..."
        )


@customers_app.command("forget")
def forget_customer(
    customer: Annotated[str, typer.Argument(help="The customer's id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="Who asks, for the audit (default: your user name).")
    ] = None,
    gateway_url: GatewayOpt = None,
) -> None:
    """Erase a customer (GDPR, PIPL): end their journeys, remove their name, phone, attributes and
    the numbers and texts of their messages and replies. Counts and the hashed opt-out stay; the
    erasure is recorded. It cannot be undone."""
    import getpass

    if not yes:
        typer.confirm(f"Erase customer {customer!r}? This cannot be undone", abort=True)
    try:
        who = by or getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        who = by or "cli"
    path = f"/v1/customers/{quote(customer, safe='')}:forget"
    done = call_gateway("POST", path, gateway_url, params={"by": who})
    console.print(
        f"erased {customer}: {done['messages']} messages, {done['replies']} replies and "
        f"{done['events']} events cleared; {done['journeys_ended']} journeys ended"
    )
