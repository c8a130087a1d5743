"""What crosses a process boundary, declared once for both sides: activities, signals, queries,
search attributes and the error types a retry policy treats as permanent.

These are wire names. Recorded histories hold them (``tests/workflows/histories/``): never rename
one, even when the Python symbol that carries it moves.

Activities are declared here as typed stubs, with no I/O: a workflow calls
``workflow.execute_activity(send_message, request, ...)`` with the stub, so the name, the input
model and the result model are checked by mypy, and workflow code never imports the modules that
do the I/O (the implementations in ``activities/`` carry the same name, and
``tests/unit/test_contracts.py`` proves each implementation matches its stub).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.common import SearchAttributeKey

from nudge.broadcasts import (
    BatchReport,
    BatchRequest,
    BroadcastCounts,
    CountRequest,
    ExpireReport,
    ExpireRequest,
    Page,
    PageRequest,
    Progress,
)
from nudge.errors import InvalidInput, PermanentProviderError, TemplateError
from nudge.experiments import VariantChoice, VariantRequest
from nudge.models import Event, JourneyState, MessageUpdate, Profile, SendRequest, SendResult

if TYPE_CHECKING:
    from temporalio.client import WorkflowHandle

T = TypeVar("T")

# ----- activities ----------------------------------------------------------------------------


@activity.defn(name="send_message")
async def send_message(request: SendRequest) -> SendResult:
    """The send gate (``activities/send``): idempotent by ``request.idempotency_key``."""
    raise NotImplementedError("a stub: the worker registers activities.send.SendActivities.send_message")


@activity.defn(name="get_profile")
async def get_profile(customer_id: str) -> Profile:
    """The customer's CRM profile (``activities/crm.py``); an unknown customer is ``exists=False``."""
    raise NotImplementedError("a stub: the worker registers activities.crm.CrmActivities.get_profile")


@activity.defn(name="assign_variant")
async def assign_variant(request: VariantRequest) -> VariantChoice:
    """A customer's variant in an experiment, recorded (``activities/experiments.py``)."""
    raise NotImplementedError("a stub: the worker registers activities.experiments.ExperimentActivities")


ACTIVITIES = (send_message, get_profile, assign_variant)
"""Every activity a journey calls; the worker registers one implementation of each."""


class ReceiptSweep(BaseModel):
    """One pass of the receipt sweep: messages without a final status ``after`` since their
    provider took them (and not asked about for as long), up to ``within`` old."""

    after: timedelta = Field(gt=timedelta(0))
    within: timedelta = Field(gt=timedelta(0))
    limit: int = Field(default=500, ge=1)


class SweepReport(BaseModel):
    checked: int = 0
    """Messages whose provider was asked."""
    reconciled: int = 0
    """Of those, how many the status API gave a final status for (stored, and signalled)."""
    failed: int = 0
    """Asks that failed (the provider's error is logged; they are asked again next time)."""
    more: bool = False
    """The pass stopped at its limit with more left."""


@activity.defn(name="reconcile_receipts")
async def reconcile_receipts(sweep: ReceiptSweep) -> SweepReport:
    """Ask the providers' status APIs about messages whose receipt never came
    (``activities/receipt_sweep.py``), and apply what they say as receipts."""
    raise NotImplementedError("a stub: the worker registers activities.receipt_sweep.ReceiptSweeper")


MAINTENANCE_ACTIVITIES = (reconcile_receipts,)
"""Activities of the worker's own scheduled workflows (``workflows/maintenance.py``)."""


@activity.defn(name="broadcast_page")
async def broadcast_page(request: PageRequest) -> Page:
    """The bounds of a broadcast's next batches (``activities/broadcast/``)."""
    raise NotImplementedError("a stub: the worker registers activities.broadcast.BroadcastActivities")


@activity.defn(name="send_broadcast_batch")
async def send_broadcast_batch(request: BatchRequest) -> BatchReport:
    """One batch through the gate and the providers' batch APIs; idempotent per recipient."""
    raise NotImplementedError("a stub: the worker registers activities.broadcast.BroadcastActivities")


@activity.defn(name="expire_broadcast")
async def expire_broadcast(request: ExpireRequest) -> ExpireReport:
    """Mark a broadcast's recipients still waiting as expired (its deadline, or a cancel)."""
    raise NotImplementedError("a stub: the worker registers activities.broadcast.BroadcastActivities")


@activity.defn(name="broadcast_counts")
async def broadcast_counts(request: CountRequest) -> BroadcastCounts:
    """The audience's size and the broadcast's delivered messages, from the store."""
    raise NotImplementedError("a stub: the worker registers activities.broadcast.BroadcastActivities")


BROADCAST_ACTIVITIES = (broadcast_page, send_broadcast_batch, expire_broadcast, broadcast_counts)
"""Every activity the ``Broadcast`` workflow calls (``workflows/broadcast.py``)."""

PERMANENT_ERRORS: tuple[type[Exception], ...] = (TemplateError, InvalidInput, PermanentProviderError)
"""Errors an activity raises as ``ApplicationError(type=<class name>)`` that no retry can cure."""


def error_type(error: type[Exception]) -> str:
    """The ``ApplicationError.type`` an activity gives ``error`` (a retry policy matches on it)."""
    return error.__name__


# ----- signals and queries -------------------------------------------------------------------


@dataclass(frozen=True)
class Signal(Generic[T]):
    """A signal's name and argument type, shared by the journey that handles it and its senders."""

    name: str
    arg: type[T]

    async def send(self, handle: WorkflowHandle[Any, Any], arg: T) -> None:
        await handle.signal(self.name, arg)


@dataclass(frozen=True)
class Query(Generic[T]):
    name: str
    result: type[T]

    async def ask(self, handle: WorkflowHandle[Any, Any]) -> T:
        return await handle.query(self.name, result_type=self.result)


EVENT = Signal("event", Event)
"""A customer's event, to the journeys that listen for it (and the signal a journey starts with)."""
MESSAGE = Signal("message", MessageUpdate)
"""A receipt or a click on a message a journey sent."""
STATE = Query("state", JourneyState)
"""Where a journey is: its step, its messages, its outcome."""

PROGRESS = Query("progress", Progress)
"""A broadcast's progress (``workflows/broadcast.py``)."""
PAUSE = "pause"
RESUME = "resume"
CANCEL = "cancel"
"""A broadcast's updates: each answers with its ``Progress`` once it took effect (no batch in
flight any more, for a pause or a cancel)."""

OPTED_OUT = "opted_out"
"""The event the gateway signals to a customer's marketing journeys when they opt out."""

# ----- search attributes ---------------------------------------------------------------------

SA_JOURNEY = SearchAttributeKey.for_keyword("NudgeJourney")
SA_CUSTOMER = SearchAttributeKey.for_keyword("NudgeCustomerId")
SA_STEP = SearchAttributeKey.for_keyword("NudgeStep")
SA_OUTCOME = SearchAttributeKey.for_keyword("NudgeOutcome")
SA_BROADCAST = SearchAttributeKey.for_keyword("NudgeBroadcastId")
SEARCH_ATTRIBUTES: dict[str, str] = {
    key.name: "Keyword" for key in (SA_JOURNEY, SA_CUSTOMER, SA_STEP, SA_OUTCOME, SA_BROADCAST)
}
"""Name -> type of the search attributes the Temporal UI filters on; registered when the dev server
starts."""
