"""``nudge customers add`` and ``nudge customers import`` against the real gateway over loopback."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path
from typing import Any

from sqlmodel import select
from typer.testing import CliRunner

from nudge.store import CustomerImport, CustomerImportRow
from starter.cli import app
from tests.api.cli import nudge
from tests.api.conftest import Gateway


async def test_cli_customers_add_stores_the_phone_in_e164_and_the_consent(
    gateway: Gateway, customer_id: str
) -> None:
    """A national number is read in --country and stored in E.164; --consent records the source and
    wording given; the language becomes the profile's attribute."""
    result = await nudge(
        gateway,
        *("customers", "add", customer_id, "--phone", "(415) 555-2671", "--country", "us"),
        *("--name", "Ada", "--timezone", "America/Los_Angeles", "--language", "en"),
        *("--consent", "--consent-source", "checkout_form", "--consent-text", "Offers by SMS"),
    )
    assert result.exit_code == 0, result.output
    assert f"customer {customer_id} saved: +14*****2671 (US, America/Los_Angeles, en)" in result.output
    assert "marketing consent: granted (checkout_form)" in result.output

    stored = (await gateway.http.get(f"/v1/customers/{customer_id}")).json()
    assert (stored["phone"], stored["country"], stored["name"]) == ("+14155552671", "US", "Ada")
    assert stored["timezone"] == "America/Los_Angeles" and stored["attributes"] == {"language": "en"}
    record = (await gateway.http.get(f"/v1/customers/{customer_id}/consent")).json()
    assert [(c["granted"], c["source"], c["text"]) for c in record["current"]] == [
        (True, "checkout_form", "Offers by SMS")
    ]
    assert [e["actor"] for e in record["history"]] == ["nudge customers add"]


async def test_cli_customers_add_invalid_phone_exits_2_with_the_reason(
    gateway: Gateway, customer_id: str
) -> None:
    """An invalid number is refused with the gateway's reason and exit 2; nothing is stored."""
    result = await nudge(gateway, "customers", "add", customer_id, "--phone", "12345", "--consent")
    assert result.exit_code == 2
    assert f"{customer_id}: not a valid phone number for its region (422)" in result.output
    assert (await gateway.http.get(f"/v1/customers/{customer_id}")).status_code == 404


async def test_cli_customers_add_without_consent_says_marketing_is_not_sent(
    gateway: Gateway, customer_id: str
) -> None:
    """A customer added without --consent is stored, and the CLI says marketing will not reach them."""
    result = await nudge(gateway, "customers", "add", customer_id, "--phone", "+8613800138000")
    assert result.exit_code == 0, result.output
    assert f"no consent on record: marketing is not sent to {customer_id}" in result.output
    assert (await gateway.http.get(f"/v1/customers/{customer_id}")).json()["phone"] == "+8613800138000"


async def test_cli_customers_add_again_keeps_a_withdrawal(gateway: Gateway, customer_id: str) -> None:
    """Adding a customer again with --consent after they withdrew keeps the withdrawal, and says so."""
    add = ("customers", "add", customer_id, "--phone", "+8613800138000", "--consent")
    assert (await nudge(gateway, *add)).exit_code == 0
    withdrawn = await nudge(gateway, "consent", "withdraw", customer_id, "--source", "support_email")
    assert withdrawn.exit_code == 0, withdrawn.output
    again = await nudge(gateway, *add)
    assert again.exit_code == 0, again.output
    assert "marketing consent: withdrawn (support_email)" in again.output
    assert "already on record" in again.output and f"nudge consent grant {customer_id}" in again.output


def test_cli_customers_add_refuses_consent_details_without_consent() -> None:
    """--consent-source without --consent exits 2 before any request, naming the missing flag."""
    argv = ["customers", "add", "c1", "--phone", "+8613800138000", "--consent-source", "form"]
    result = CliRunner().invoke(app, [*argv, "--gateway", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "add --consent" in result.output


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


async def profile(gateway: Gateway, customer_id: str) -> dict[str, Any]:
    response = await gateway.http.get(f"/v1/customers/{customer_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def staged_rows(gateway: Gateway) -> int:
    async with gateway.sessions() as session:
        return len((await session.exec(select(CustomerImportRow))).all())


async def test_cli_customers_import_stores_e164_phones_and_attributes(
    gateway: Gateway, tmp_path: Path
) -> None:
    """National numbers are read in the row's country (upper-cased) or NUDGE_DEFAULT_REGION and
    stored in E.164; other columns become attributes; every row imported, exit 0, no rejects file."""
    tag = uuid.uuid4().hex[:6]
    csv_file = write_csv(
        tmp_path / "customers.csv",
        "id,name,phone,country,timezone,lifecycle_stage,tier\n"
        f"a-{tag},Ada,(415) 555-2671,us,America/Los_Angeles,active,gold\n"
        f"b-{tag},Bo,13800138000,,Asia/Shanghai,,\n"
        f"c-{tag},,+447911123456,GB,,,silver\n"
        f"d-{tag},Dee,,,,,\n",
    )
    result = await nudge(gateway, "customers", "import", str(csv_file))
    assert result.exit_code == 0, result.output
    assert "imported 4 customers (4 new, 0 updated); consent recorded for 0" in result.stdout
    assert not (tmp_path / "customers.rejects.csv").exists()
    ada, bo, c, dee = [await profile(gateway, f"{x}-{tag}") for x in "abcd"]
    assert (ada["phone"], ada["country"], ada["timezone"]) == ("+14155552671", "US", "America/Los_Angeles")
    assert (ada["name"], ada["lifecycle_stage"], ada["attributes"]) == ("Ada", "active", {"tier": "gold"})
    assert (bo["phone"], bo["country"], bo["lifecycle_stage"], bo["attributes"]) == (
        "+8613800138000",
        None,
        "new",
        {"tier": ""},
    )
    assert (c["phone"], c["name"], c["attributes"]) == ("+447911123456", None, {"tier": "silver"})
    assert (dee["phone"], dee["erased_at"]) == (None, None)
    assert await staged_rows(gateway) == 0


async def test_cli_customers_import_rejects_rows_with_line_and_reason_and_imports_the_rest(
    gateway: Gateway, tmp_path: Path
) -> None:
    """Invalid rows are listed as FILE:LINE: ID: REASON (lines as in the file, a quoted value over
    two lines included), written with their values to --rejects, and not imported; the valid rows
    are imported; exit 2."""
    tag = uuid.uuid4().hex[:6]
    csv_file = write_csv(
        tmp_path / "in.csv",
        "id,name,phone,timezone,consent_source,consent_at\n"
        f'ok1-{tag},"Two\nlines",+8613800138001,,,\n'
        f"bad-phone-{tag},Ben,12345,,,\n"
        f",Nobody,+8613800138002,,,\n"
        "\n"
        f"bad-zone-{tag},Cy,,Mars/Olympus,,\n"
        f"bad-time-{tag},Di,,,form,yesterday\n"
        f"ok2-{tag},Ed,13800138003,,,\n",
    )
    rejects = tmp_path / "out" / "rejected.csv"
    rejects.parent.mkdir()
    result = await nudge(gateway, "customers", "import", str(csv_file), "--rejects", str(rejects))
    assert result.exit_code == 2, result.output
    assert f"{csv_file}:4: bad-phone-{tag}: phone: not a valid phone number for its region" in result.stderr
    assert f"{csv_file}:5: : empty id" in result.stderr
    assert f"{csv_file}:7: bad-zone-{tag}: timezone: 'Mars/Olympus' is not an IANA time zone" in result.stderr
    assert f"{csv_file}:8: bad-time-{tag}: consent_at: " in result.stderr
    assert "4 rows rejected and not imported" in result.stderr
    assert "imported 2 customers (2 new, 0 updated)" in result.stdout
    with rejects.open(newline="") as handle:
        written = list(csv.reader(handle))
    assert written[0] == ["line", "reason", "id", "name", "phone", "timezone", "consent_source", "consent_at"]
    assert [(row[0], row[2], row[4]) for row in written[1:]] == [
        ("4", f"bad-phone-{tag}", "12345"),
        ("5", "", "+8613800138002"),
        ("7", f"bad-zone-{tag}", ""),
        ("8", f"bad-time-{tag}", ""),
    ]
    assert (await profile(gateway, f"ok1-{tag}"))["name"] == "Two\nlines"
    assert (await profile(gateway, f"ok2-{tag}"))["phone"] == "+8613800138003"
    for rejected in ("bad-phone", "bad-zone", "bad-time"):
        assert (await gateway.http.get(f"/v1/customers/{rejected}-{tag}")).status_code == 404


async def test_cli_customers_import_strict_imports_nothing_when_a_row_is_rejected(
    gateway: Gateway, tmp_path: Path
) -> None:
    """--strict: one invalid row and no row is imported (the valid ones neither), the import is
    aborted with its staged rows deleted, the rejects are written next to the file; exit 2."""
    tag = uuid.uuid4().hex[:6]
    csv_file = write_csv(
        tmp_path / "strict.csv",
        f"id,phone\nfine-{tag},+8613800138004\nbad-{tag},999\nfine2-{tag},+8613800138005\n",
    )
    result = await nudge(gateway, "customers", "import", str(csv_file), "--strict", "--batch-size", "1")
    assert result.exit_code == 2, result.output
    assert "--strict: 1 row rejected, so nothing was imported" in result.stderr
    assert "bad-" in (tmp_path / "strict.rejects.csv").read_text()
    for customer in (f"fine-{tag}", f"fine2-{tag}"):
        assert (await gateway.http.get(f"/v1/customers/{customer}")).status_code == 404
    assert await staged_rows(gateway) == 0
    async with gateway.sessions() as session:
        statuses = (await session.exec(select(CustomerImport.status))).all()
    assert statuses == ["aborted"]


async def test_cli_customers_import_records_consent_first_only_with_its_audit_row(
    gateway: Gateway, tmp_path: Path
) -> None:
    """Consent given in the file is recorded for customers with none on record, with one audit row
    by `nudge customers import`; a withdrawal on record stands, its trail unchanged; an id on two
    lines takes its profile from the last and its consent from the first that gives one."""
    tag = uuid.uuid4().hex[:6]
    withdrawn = f"w-{tag}"
    assert (
        await nudge(gateway, "customers", "add", withdrawn, "--phone", "+8613800138006", "--consent")
    ).exit_code == 0
    assert (
        await nudge(gateway, "consent", "withdraw", withdrawn, "--source", "support_email")
    ).exit_code == 0
    before = (await gateway.http.get(f"/v1/customers/{withdrawn}/consent")).json()
    csv_file = write_csv(
        tmp_path / "consent.csv",
        "id,name,phone,consent_source,consent_text,consent_at\n"
        f"n-{tag},New,+8613800138007,checkout_form,Offers by SMS,2026-11-30T18:00:00+08:00\n"
        f"{withdrawn},Was,+8613800138006,crm_import,Offers,\n"
        f"d-{tag},First,+8613800138008,,,\n"
        f"d-{tag},Second,+8613800138009,form_a,Text A,\n"
        f"d-{tag},Last,+8613800138010,form_b,Text B,\n",
    )
    result = await nudge(gateway, "customers", "import", str(csv_file))
    assert result.exit_code == 0, result.output
    assert "imported 3 customers (2 new, 1 updated); consent recorded for 2" in result.stdout
    new = (await gateway.http.get(f"/v1/customers/n-{tag}/consent")).json()
    assert [(c["granted"], c["source"], c["text"], c["at"]) for c in new["current"]] == [
        (True, "checkout_form", "Offers by SMS", "2026-11-30T10:00:00Z")
    ]
    assert [(e["action"], e["source"], e["actor"], e["at"]) for e in new["history"]] == [
        ("granted", "checkout_form", "nudge customers import", "2026-11-30T10:00:00Z")
    ]
    assert (await gateway.http.get(f"/v1/customers/{withdrawn}/consent")).json() == before
    assert (await profile(gateway, withdrawn))["name"] == "Was"
    twice = (await gateway.http.get(f"/v1/customers/d-{tag}/consent")).json()
    assert [(c["source"], c["text"]) for c in twice["current"]] == [("form_a", "Text A")]
    assert len(twice["history"]) == 1
    assert ((await profile(gateway, f"d-{tag}"))["name"], (await profile(gateway, f"d-{tag}"))["phone"]) == (
        "Last",
        "+8613800138010",
    )


async def test_cli_customers_import_again_updates_and_restores_an_erased_customer(
    gateway: Gateway, tmp_path: Path
) -> None:
    """A second import replaces the profiles (created_at kept, attributes replaced) and counts them
    as updated; a customer erased in between is a profile again, no longer erased."""
    tag = uuid.uuid4().hex[:6]
    first = write_csv(
        tmp_path / "one.csv", f"id,name,phone,tier\nu-{tag},Uma,+8613800138011,gold\ne-{tag},Eve,,\n"
    )
    assert (await nudge(gateway, "customers", "import", str(first))).exit_code == 0
    created_at = (await profile(gateway, f"u-{tag}"))["created_at"]
    forgot = await gateway.http.post(f"/v1/customers/e-{tag}:forget", params={"by": "test"})
    assert forgot.status_code == 200, forgot.text
    assert (await profile(gateway, f"e-{tag}"))["erased_at"] is not None
    second = write_csv(
        tmp_path / "two.csv",
        f"id,name,phone,city\nu-{tag},Uma B,13800138012,Hangzhou\ne-{tag},Eve,+8613800138013,\n",
    )
    result = await nudge(gateway, "customers", "import", str(second))
    assert result.exit_code == 0, result.output
    assert "imported 2 customers (0 new, 2 updated)" in result.stdout
    uma = await profile(gateway, f"u-{tag}")
    assert (uma["name"], uma["phone"], uma["attributes"], uma["created_at"]) == (
        "Uma B",
        "+8613800138012",
        {"city": "Hangzhou"},
        created_at,
    )
    eve = await profile(gateway, f"e-{tag}")
    assert (eve["erased_at"], eve["name"], eve["phone"]) == (None, "Eve", "+8613800138013")


async def test_cli_customers_import_refuses_a_file_without_an_id_column(
    gateway: Gateway, tmp_path: Path
) -> None:
    """A header without `id` exits 2 before any import is opened; a row holding NUL is rejected by
    the CLI itself (the gateway refuses any body carrying one) and the others go."""
    no_id = write_csv(tmp_path / "noid.csv", "name,phone\nAnn,+8613800138014\n")
    result = await nudge(gateway, "customers", "import", str(no_id))
    assert result.exit_code == 2
    assert "the header row must include an 'id' column" in result.stderr
    async with gateway.sessions() as session:
        assert (await session.exec(select(CustomerImport))).all() == []
    tag = uuid.uuid4().hex[:6]
    nul = write_csv(tmp_path / "nul.csv", f"id,name\nn1-{tag},An\x00n\nn2-{tag},Bo\n")
    result = await nudge(gateway, "customers", "import", str(nul))
    assert result.exit_code == 2, result.output
    assert f"nul.csv:2: n1-{tag}: contains a NUL character (U+0000)" in result.stderr
    assert (await profile(gateway, f"n2-{tag}"))["name"] == "Bo"
