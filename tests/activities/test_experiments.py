"""``assign_variant`` and the counts experiments are judged on, on SQLite and PostgreSQL: sticky
assignments, a concluded experiment's winner, a bandit that follows the data, hourly looks."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.experiments import ExperimentActivities, experiment_counts
from nudge.experiments import Metric, VariantRequest
from nudge.store import Assignment, Click, Conversion, Experiment, Message

START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _request(customer: str, *, bandit: bool = False, metric: Metric = Metric.CLICKED) -> VariantRequest:
    return VariantRequest(
        experiment="copy",
        customer_id=customer,
        workflow_id=f"journey:onboarding:{customer}",
        journey="onboarding",
        weights={"a": 1, "b": 1},
        bandit=bandit,
        metric=metric,
    )


def _point(customer: str) -> float:
    """The bucket point as tests/unit/test_bucketing.py pins it: sha256, first 8 bytes, over 2^64."""
    return int.from_bytes(hashlib.sha256(f"copy:{customer}".encode()).digest()[:8], "big") / 2**64


async def test_assignment_is_the_declared_bucket_recorded_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A first split records the bucket with its allocation; asking again (a retry, a re-entry)
    answers the same variant as ``assigned`` without a second row; the experiment is declared."""
    activities = ExperimentActivities(sessions, clock=lambda: START)
    first = await activities.assign_variant(_request("c1"))
    again = await activities.assign_variant(_request("c1"))
    assert first.variant == ("a" if _point("c1") < 0.5 else "b")
    assert (first.reason, first.allocation) == ("weights", {"a": 0.5, "b": 0.5})
    assert (again.variant, again.reason) == (first.variant, "assigned")
    async with sessions() as session:
        rows = (await session.exec(select(Assignment))).all()
        experiment = await session.get(Experiment, "copy")
    assert [(r.customer_id, r.variant, r.at, r.workflow_id) for r in rows] == [
        ("c1", first.variant, START, "journey:onboarding:c1")
    ]
    assert experiment is not None and (experiment.variants, experiment.mode, experiment.metric) == (
        ["a", "b"],
        "fixed",
        "clicked",
    )


async def test_a_concluded_experiment_gives_new_customers_its_winner(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """After conclusion with b, a customer whose bucket is a gets b (reason ``winner``); one
    placed before keeps their variant."""
    activities = ExperimentActivities(sessions)
    in_a = next(c for c in (f"w{i}" for i in range(50)) if _point(c) < 0.5)
    early = await activities.assign_variant(_request("early"))
    async with sessions() as session:
        experiment = await session.get(Experiment, "copy")
        assert experiment is not None
        experiment.winner = "b"
        session.add(experiment)
        await session.commit()
    late = await activities.assign_variant(_request(in_a))
    assert (late.variant, late.reason, late.allocation) == ("b", "winner", {"b": 1.0})
    assert (await activities.assign_variant(_request("early"))).variant == early.variant


async def _exposed(
    sessions: async_sessionmaker[AsyncSession],
    variant: str,
    customers: range,
    *,
    clicked: int,
    hour: int,
    click_after: timedelta = timedelta(minutes=10),
) -> None:
    """Customers exposed to ``variant`` at ``hour``, the first ``clicked`` of them clicking (a
    person's click, ``click_after`` later)."""
    async with sessions() as session:
        for i in customers:
            customer = f"{variant}{i}"
            at = START + timedelta(hours=hour)
            if i - customers.start < clicked:
                session.add(Click(code=f"c-{customer}", message_id=f"m-{customer}", at=at + click_after))
            session.add(
                Assignment(
                    experiment="copy",
                    variant=variant,
                    customer_id=customer,
                    workflow_id=f"w-{customer}",
                    journey="onboarding",
                    reason="weights",
                    at=at,
                )
            )
            session.add(
                Message(
                    id=f"m-{customer}",
                    idempotency_key=f"k-{customer}",
                    workflow_id=f"w-{customer}",
                    journey="onboarding",
                    step="send:welcome",
                    customer_id=customer,
                    template="welcome",
                    category="marketing",
                    variant=f"copy:{variant}",
                    status="delivered",
                    clicked=i - customers.start < clicked,
                )
            )
        await session.commit()


async def test_counts_are_customers_who_succeeded_with_a_message_of_their_variant(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Clicked, delivered and converted count customers; a message of another experiment does not
    count; hourly looks are cumulative and in time order."""
    await _exposed(sessions, "a", range(0, 10), clicked=2, hour=0)
    await _exposed(sessions, "b", range(0, 10), clicked=5, hour=0)
    await _exposed(sessions, "b", range(10, 20), clicked=1, hour=2)
    async with sessions() as session:
        session.add(
            Conversion(
                event_id="e1", name="order_paid", customer_id="b3", message_id="x", journey="onboarding",
                step="send:welcome", template="welcome", variant="copy:b",
            )
        )  # fmt: skip
        session.add(
            Conversion(
                event_id="e2", name="order_paid", customer_id="a1", message_id="y", journey="onboarding",
                step="send:welcome", template="welcome", variant="other:a",
            )
        )  # fmt: skip
        await session.commit()
        connection = await session.connection()
        clicked, looks = await experiment_counts(connection, "copy", Metric.CLICKED, hourly=True)
        delivered, _ = await experiment_counts(connection, "copy", Metric.DELIVERED)
        converted, _ = await experiment_counts(connection, "copy", Metric.CONVERTED)
    assert clicked == {"a": (2, 10), "b": (6, 20)}
    assert looks == [{"a": (2, 10), "b": (5, 10)}, {"a": (2, 10), "b": (6, 20)}]
    assert delivered == {"a": (10, 10), "b": (20, 20)}
    assert converted == {"a": (0, 10), "b": (1, 20)}


async def test_a_look_counts_only_what_had_happened_by_its_hour(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A click three hours after its exposure shows in the look of the hour it came, not earlier:
    the looks read the same whenever the report is asked for."""
    await _exposed(sessions, "a", range(0, 2), clicked=1, hour=0, click_after=timedelta(hours=3))
    await _exposed(sessions, "b", range(0, 2), clicked=0, hour=1)
    async with sessions() as session:
        counts, looks = await experiment_counts(
            await session.connection(), "copy", Metric.CLICKED, hourly=True
        )
    assert counts == {"a": (1, 2), "b": (0, 2)}
    assert looks == [{"a": (0, 2)}, {"a": (0, 2), "b": (0, 2)}, {"a": (1, 2), "b": (0, 2)}]


async def test_a_bandit_sends_most_new_customers_to_the_variant_that_clicks_more(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """With b clicking 40 % against a's 10 % over 100 customers each, the allocation puts more than
    99 % on b, is recorded with each assignment, and most of 200 new customers get b."""
    await _exposed(sessions, "a", range(0, 100), clicked=10, hour=0)
    await _exposed(sessions, "b", range(0, 100), clicked=40, hour=0)
    activities = ExperimentActivities(sessions)
    choices = [await activities.assign_variant(_request(f"n{i}", bandit=True)) for i in range(200)]
    assert choices[0].reason == "bandit" and choices[0].allocation["b"] > 0.99
    assert sum(c.variant == "b" for c in choices) >= 190
    async with sessions() as session:
        recorded = (await session.exec(select(Assignment).where(Assignment.customer_id == "n0"))).one()
        experiment = await session.get(Experiment, "copy")
    assert recorded.reason == "bandit" and recorded.allocation == choices[0].allocation
    assert experiment is not None and experiment.mode == "bandit"
