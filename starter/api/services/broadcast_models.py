"""What the broadcasts service takes and answers: the start's body, a broadcast as ops read it,
the refusals (each under ``InvalidInput``), and the id, spec and memo a start derives."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from nudge.broadcasts import BROADCAST_ID_PATTERN, BroadcastSpec, Progress
from nudge.errors import InvalidInput

Scalar = str | int | float | bool


class UnknownBroadcast(InvalidInput):
    """No broadcast has this id."""


class BroadcastExists(InvalidInput):
    """A broadcast with this id was started already (ids are never reused: they key its messages)."""


class BroadcastRefused(InvalidInput):
    """The broadcast's state does not allow this (a pause of a paused one, anything of a finished one)."""


class NoWorkerAnswered(InvalidInput):
    """No worker took the update up in time: it may still take effect when one does."""


class InvalidBroadcast(InvalidInput):
    """A rule the schema cannot say: no such audience, template or route; a deadline before the start."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class BroadcastCreate(BroadcastSpec):
    """What starts a broadcast: the spec, its id optional (one is made from the template and the time)."""

    broadcast_id: str | None = Field(  # type: ignore[assignment]
        default=None, pattern=BROADCAST_ID_PATTERN, description="Default: <template>-<time>-<4 hex>."
    )
    params: dict[str, Scalar] = Field(  # type: ignore[assignment]
        default_factory=dict, max_length=50, description="Template variables every recipient shares."
    )


class BroadcastView(BaseModel):
    """A broadcast as ops read it: where it is, and what Temporal says of its workflow."""

    broadcast_id: str
    workflow_id: str
    status: str
    """The workflow's: ``running``, ``completed``, ``failed``, ``terminated``..."""
    progress: Progress | None = None
    """None when no worker answered the query (a running broadcast whose workers are down)."""
    processed: int = 0
    audience: str | None = None
    template: str | None = None
    started_by: str | None = None
    failure: str | None = None


def new_broadcast_id(template: str, now: datetime) -> str:
    """``<template>-YYYYMMDD-HHMMSS-<4 hex>``, the template's name folded to the id's characters."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", template.lower()).strip("-._")[:50] or "broadcast"
    return f"{slug}-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def spec_of(body: BroadcastCreate, broadcast_id: str) -> BroadcastSpec:
    """The workflow's input for ``body`` under ``broadcast_id``."""
    return BroadcastSpec.model_validate({**body.model_dump(), "broadcast_id": broadcast_id})


def memo_of(spec: BroadcastSpec, *, by: str) -> dict[str, Any]:
    """What a list shows of a broadcast without asking its workflow (sealed by the codec, like all memos)."""
    return {"audience": spec.audience, "template": spec.template, "by": by}
