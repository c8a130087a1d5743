"""How ``nudge journeys`` and ``nudge event`` print workflows: ids whole at any width, each
finished journey's outcome with its reason."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from nudge.models import JourneyResult
from starter.cli.common import print_workflows
from starter.cli.journeys import HEADERS, ending

LONG_ID = "journey:cart_abandonment:customer-0123456789abcdef0123:cart-0123456789abcdef"
ROWS = [
    (
        LONG_ID,
        "cart_abandonment",
        "completed",
        "done:exited (opted_out)",
        "",
        "cart_reminder: sent (delivered, sim-aliyun)\ncart_coupon: blocked (opted_out)",
        "2026-12-01 10:00:00",
    ),
    ("journey:onboarding:c42", "onboarding", "running", "wait:activation", "3 days left", "-", "2026-12-01"),
]


def printed(width: int) -> str:
    out = Console(file=io.StringIO(), width=width)
    print_workflows(HEADERS, ROWS, wrap=("detail", "messages", "started"), out=out)
    assert isinstance(out.file, io.StringIO)
    return out.file.getvalue()


@pytest.mark.parametrize("width", [40, 60, 80, 120, 160, 200, 240])
def test_print_workflows_keeps_every_id_whole_on_one_line(width: int) -> None:
    """At any console width each workflow id is printed unbroken, even one wider than the console."""
    lines = printed(width).splitlines()
    for workflow_id, *_ in ROWS:
        assert any(workflow_id in line for line in lines), f"{workflow_id} cut at width {width}"


@pytest.mark.parametrize("width", [60, 240])
def test_print_workflows_shows_names_and_steps_unbroken(width: int) -> None:
    """Narrow (one block per journey) or wide (a table), the journey name and the step with its
    reason stay on one line."""
    text = printed(width)
    assert "done:exited (opted_out)" in text
    assert "cart_abandonment" in text.replace(LONG_ID, "")
    assert "CartAbandonment" not in text


def test_print_workflows_is_a_table_when_it_fits() -> None:
    """A console wide enough gets one table row per workflow, its cells on the id's line."""
    line = next(line for line in printed(240).splitlines() if LONG_ID in line)
    assert "cart_abandonment" in line.replace(LONG_ID, "") and "done:exited (opted_out)" in line


@pytest.mark.parametrize(
    ("result", "step"),
    [
        (JourneyResult(outcome="exited", reason="opted_out"), "done:exited (opted_out)"),
        (JourneyResult(outcome="converted", reason="order_paid"), "done:converted (order_paid)"),
        (JourneyResult(outcome="completed"), "done:completed"),
    ],
)
def test_ending_shows_the_outcome_with_its_reason(result: JourneyResult, step: str) -> None:
    """A finished journey's step is its outcome, with the reason when there is one."""
    assert ending(result) == step
