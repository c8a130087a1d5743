"""The wire contracts: every activity stub a journey calls has an implementation with the same
name and types, every journey handles the signals and the query under their declared names, and
the retry policy's permanent errors are the ones the activities raise."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from temporalio import activity, workflow

from activities.broadcast import BroadcastActivities
from activities.crm import CrmActivities
from activities.experiments import ExperimentActivities
from activities.receipt_sweep import ReceiptSweeper
from activities.send import SendActivities
from nudge import contracts
from nudge.errors import NudgeError
from starter.testing import FakeCarrier
from workflows import JOURNEYS
from workflows.maintenance import RECEIPT_SCHEDULE_ID, ReconcileReceipts
from workflows.policies import SEND_RETRY

ROOT = Path(__file__).resolve().parents[2]
IMPLEMENTATIONS = {
    "send_message": SendActivities.send_message,
    "get_profile": CrmActivities.get_profile,
    "assign_variant": ExperimentActivities.assign_variant,
    "reconcile_receipts": ReceiptSweeper.reconcile_receipts,
    "broadcast_page": BroadcastActivities.broadcast_page,
    "send_broadcast_batch": BroadcastActivities.send_broadcast_batch,
    "expire_broadcast": BroadcastActivities.expire_broadcast,
    "broadcast_counts": BroadcastActivities.broadcast_counts,
}
"""What worker.py registers, by wire name (test_worker_registers_every_contract checks worker.py)."""


@pytest.mark.parametrize(
    "stub",
    contracts.ACTIVITIES + contracts.MAINTENANCE_ACTIVITIES + contracts.BROADCAST_ACTIVITIES,
    ids=lambda s: s.__name__,
)
def test_each_activity_stub_matches_its_implementation(stub: object) -> None:
    """The stub and the worker's implementation agree on the name, the input and the result."""
    declared = activity._Definition.must_from_callable(stub)  # type: ignore[arg-type]
    implemented = activity._Definition.must_from_callable(IMPLEMENTATIONS[declared.name])  # type: ignore[arg-type]
    assert (implemented.name, implemented.arg_types, implemented.ret_type) == (
        declared.name,
        declared.arg_types,
        declared.ret_type,
    )


@pytest.mark.parametrize("stub", contracts.ACTIVITIES, ids=lambda s: s.__name__)
def test_the_journey_test_kit_fakes_each_activity_under_its_name(stub: object) -> None:
    """The fakes a journey's test runs against answer to the same names and types as the stubs."""
    declared = activity._Definition.must_from_callable(stub)  # type: ignore[arg-type]
    fake = getattr(FakeCarrier, declared.name)
    faked = activity._Definition.must_from_callable(fake)
    assert (faked.name, faked.arg_types, faked.ret_type) == (
        declared.name,
        declared.arg_types,
        declared.ret_type,
    )


def test_worker_registers_every_contract() -> None:
    """worker.py hands the Worker one implementation per stub (read from its source, not run)."""
    tree = ast.parse((ROOT / "worker.py").read_text())
    stubs = contracts.ACTIVITIES + contracts.MAINTENANCE_ACTIVITIES + contracts.BROADCAST_ACTIVITIES
    names = {s.__name__ for s in stubs}
    registered = {
        node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in names
    }
    assert registered == names


@pytest.mark.parametrize("journey", JOURNEYS, ids=lambda j: j.__name__)
def test_each_journey_handles_the_signals_and_query_by_their_wire_names(journey: type) -> None:
    """``event`` and ``message`` signals and the ``state`` query, with the declared argument types."""
    definition = workflow._Definition.must_from_class(journey)
    assert {"event", "message"} <= set(definition.signals)
    assert "state" in definition.queries
    assert (contracts.EVENT.name, contracts.MESSAGE.name, contracts.STATE.name) == (
        "event",
        "message",
        "state",
    )
    hints = {name: definition.signals[name].fn.__annotations__ for name in ("event", "message")}
    assert hints["event"]["event"] in ("Event", contracts.Event)
    assert hints["message"]["update"] in ("MessageUpdate", contracts.MessageUpdate)


def test_send_retry_treats_exactly_the_permanent_errors_as_final() -> None:
    """The policy's type names are the classes' names (recorded histories hold these strings)."""
    assert SEND_RETRY.non_retryable_error_types == ["TemplateError", "InvalidInput", "PermanentProviderError"]
    assert all(issubclass(error, NudgeError) for error in contracts.PERMANENT_ERRORS)


def test_the_maintenance_names_are_the_wire_names() -> None:
    """The schedule, the workflow type and the activity that ops and recorded runs know by name."""
    assert RECEIPT_SCHEDULE_ID == "nudge-receipt-reconciler"
    assert workflow._Definition.must_from_class(ReconcileReceipts).name == "ReconcileReceipts"
    assert activity._Definition.must_from_callable(contracts.reconcile_receipts).name == "reconcile_receipts"


def test_search_attribute_names_are_the_wire_names() -> None:
    """Renaming one would hide every running journey from the UI's saved filters."""
    assert contracts.SEARCH_ATTRIBUTES == {
        "NudgeJourney": "Keyword",
        "NudgeCustomerId": "Keyword",
        "NudgeStep": "Keyword",
        "NudgeOutcome": "Keyword",
        "NudgeBroadcastId": "Keyword",
    }


def test_the_broadcast_names_are_the_wire_names() -> None:
    """The broadcast's activities, query and updates, as recorded histories and the CLI name them."""
    names = [activity._Definition.must_from_callable(a).name for a in contracts.BROADCAST_ACTIVITIES]
    assert names == ["broadcast_page", "send_broadcast_batch", "expire_broadcast", "broadcast_counts"]
    assert (contracts.PROGRESS.name, contracts.PAUSE, contracts.RESUME, contracts.CANCEL) == (
        "progress",
        "pause",
        "resume",
        "cancel",
    )
