"""``Journey.split``: place the customer in an experiment's variant through the ``assign_variant``
local activity, which records the assignment (a concluded experiment's winner, a bandit's
allocation) so that the choice is in the history and replays."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.policies import PROFILE_TIMEOUT, READ_RETRY
from workflows.sms import LOCAL_SEND_PATCH

with workflow.unsafe.imports_passed_through():
    from nudge.bucketing import bucket
    from nudge.contracts import assign_variant
    from nudge.experiments import Metric, VariantRequest

ASSIGNMENT_PATCH = "experiment-assignment"
"""Before it, ``split`` bucketed in the workflow and recorded nothing (a wire name: never rename)."""


async def choose_variant(
    *,
    journey: str,
    customer_id: str,
    experiment: str,
    weights: Mapping[str, float],
    bandit: bool,
    metric: Metric,
) -> str:
    """The customer's variant of ``experiment`` (see ``Journey.split``)."""
    if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ApplicationError(
            f"split({experiment!r}) needs non-negative weights, not all zero: {dict(weights)}",
            type="JourneyDefinitionError",
            non_retryable=True,
        )
    if not workflow.patched(ASSIGNMENT_PATCH):
        return bucket(experiment, customer_id, weights)
    # The sends that follow ask whether they are local activities; ask now, before the local
    # activity below. Were the first such ask to come after it resolved, and that resolution fall
    # in the next workflow task (a query or a task heartbeat between them), a replay would meet the
    # marker where the code did not ask yet: a nondeterminism error (seen under test queries).
    workflow.patched(LOCAL_SEND_PATCH)
    request = VariantRequest(
        experiment=experiment,
        customer_id=customer_id,
        workflow_id=workflow.info().workflow_id,
        journey=journey,
        weights=dict(weights),
        bandit=bandit,
        metric=metric,
    )
    try:
        choice = await workflow.execute_local_activity(
            assign_variant,
            request,
            start_to_close_timeout=PROFILE_TIMEOUT,
            retry_policy=READ_RETRY,
            summary=f"split {experiment}",
        )
    except (ActivityError, ApplicationError) as exc:  # a local activity's failure can come as either
        # The store stayed out of reach through every retry: the customer still gets the declared
        # bucket (deterministic, and the failure is in the history, so this replays) and the
        # journey goes on; the assignment is not recorded, so the report does not count it.
        workflow.logger.warning("split %s not recorded (%s): declared weights", experiment, exc)
        return bucket(experiment, customer_id, weights)
    return choice.variant
