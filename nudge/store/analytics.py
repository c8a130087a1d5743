"""What closes the loop: conversions attributed to the message that preceded them, experiments and
every customer's assignment to a variant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel, col

from nudge.store.columns import optional_timestamp, timestamp


class Conversion(SQLModel, table=True):
    """A journey's goal event, credited to the last message the customer received from a journey
    with that goal within the attribution window. One per event: a redelivered event counts once."""

    event_id: str = Field(primary_key=True, max_length=200)
    name: str
    """The goal event (``order_paid``)."""
    customer_id: str = Field(index=True)
    message_id: str = Field(index=True, max_length=64)
    journey: str
    step: str
    template: str
    variant: str | None = None
    route: str | None = None
    signature: str | None = None
    revenue: float | None = None
    """The event's ``amount`` property, when it has a numeric one."""
    currency: str | None = None
    at: datetime = timestamp(nullable=False, index=True)


class Experiment(SQLModel, table=True):
    """An experiment a journey's ``split`` runs; created by its first assignment."""

    name: str = Field(primary_key=True, max_length=100)
    journey: str
    variants: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    weights: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON))
    """The weights the journey's code declares (a bandit's starting allocation)."""
    mode: str = "fixed"
    """``fixed`` (the declared weights) or ``bandit`` (Thompson sampling on ``metric``)."""
    metric: str = "clicked"
    """What a variant is judged on: ``delivered``, ``clicked`` or ``converted``."""
    winner: str | None = None
    """Set by ``nudge experiments conclude``: from then on every customer gets it."""
    concluded_at: datetime | None = optional_timestamp()
    concluded_by: str | None = None
    created_at: datetime = timestamp(nullable=False)


class Assignment(SQLModel, table=True):
    """One customer's variant in one experiment, the first time ``split`` placed them; the
    allocation in force at that moment is kept, so that a bandit's choices stay explainable."""

    __table_args__ = (UniqueConstraint("experiment", "customer_id"),)
    id: int | None = Field(default=None, primary_key=True)
    experiment: str = Field(max_length=100)
    variant: str
    customer_id: str
    workflow_id: str
    journey: str
    reason: str
    """``weights`` (the declared split), ``bandit`` or ``winner`` (a concluded experiment)."""
    allocation: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    at: datetime = timestamp(nullable=False)


# An experiment's report counts exposures per variant over time.
Index("ix_assignment_experiment_at", col(Assignment.experiment), col(Assignment.at))
