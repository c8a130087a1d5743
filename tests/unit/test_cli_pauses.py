"""``nudge pause``, ``resume`` and ``pauses``: what they refuse before talking to the gateway."""

from __future__ import annotations

from typer.testing import CliRunner

from starter.cli import app

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback


def test_pause_needs_exactly_one_scope() -> None:
    """No scope, or two, exits 2 naming the options, before any request."""
    runner = CliRunner()
    none = runner.invoke(app, ["pause", "--reason", "x", "--gateway", NOWHERE])
    two = runner.invoke(app, ["resume", "--template", "a", "--route", "b", "--gateway", NOWHERE])
    for result in (none, two):
        assert result.exit_code == 2
        assert "exactly one of --template, --signature, --journey or --route" in result.output


def test_pauses_without_a_gateway_fails_clearly() -> None:
    """An unreachable gateway exits 1 with the URL and a hint, not a traceback."""
    result = CliRunner().invoke(app, ["pauses", "--gateway", NOWHERE])
    assert result.exit_code == 1
    assert "cannot reach the gateway" in result.output and "Traceback" not in result.output
