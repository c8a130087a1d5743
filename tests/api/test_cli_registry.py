"""``nudge templates`` and ``nudge signatures`` against the real gateway over loopback."""

from __future__ import annotations

from typer.testing import CliRunner

from starter.cli import app
from tests.api.cli import nudge
from tests.api.conftest import Gateway


async def test_cli_templates_put_approve_show(gateway: Gateway) -> None:
    """A template put from the CLI is a draft; approving it without STOP wording exits 2 with the
    reason; with it, it is approved and shown so."""
    result = await nudge(
        gateway, "templates", "put", "sale", "--category", "marketing", "--body", "Sale ${url}"
    )
    assert result.exit_code == 0, result.output
    assert "created as a draft" in result.output
    refused = await nudge(gateway, "templates", "approve", "sale")
    assert refused.exit_code == 2
    assert "Reply STOP to opt out" in refused.output and "(422)" in refused.output

    edited = await nudge(
        gateway,
        "templates",
        "put",
        "sale",
        "--category",
        "marketing",
        "--body",
        "Sale ${url} Reply STOP to opt out",
    )
    assert "changed (version 2)" in edited.output
    approved = await nudge(gateway, "templates", "approve", "sale")
    assert approved.exit_code == 0 and "is approved" in approved.output
    shown = await nudge(gateway, "templates", "show", "sale")
    assert "approved" in shown.output and "url" in shown.output


async def test_cli_templates_edit_of_approved_warns(gateway: Gateway) -> None:
    """Editing an approved template prints that it is a draft again and not sent until approved."""
    result = await nudge(
        gateway,
        "templates",
        "put",
        "payment_success",
        "--category",
        "transactional",
        "--body",
        "Paid ${order_id}",
    )
    assert result.exit_code == 0, result.output
    assert "not sent until it is approved again" in result.output


async def test_cli_signatures_reject_and_list(gateway: Gateway) -> None:
    """A rejected signature shows as rejected with its reason; an unknown one exits 2."""
    rejected = await nudge(gateway, "signatures", "reject", "努济", "--reason", "expired")
    assert rejected.exit_code == 0 and "rejected: expired" in rejected.output
    listed = await nudge(gateway, "signatures", "list")
    assert "努济" in listed.output and "expired" in listed.output
    unknown = await nudge(gateway, "signatures", "approve", "Acme")
    assert unknown.exit_code == 2 and "unknown signature 'Acme'" in unknown.output


def test_cli_templates_unreachable_gateway_exits_1() -> None:
    """With no gateway listening, the command says so and exits 1."""
    result = CliRunner().invoke(app, ["templates", "list", "--gateway", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the gateway at http://127.0.0.1:9" in result.output
