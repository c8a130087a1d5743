"""``nudge customers add`` against the real gateway over loopback."""

from __future__ import annotations

from typer.testing import CliRunner

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
