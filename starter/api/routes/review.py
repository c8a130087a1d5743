"""What the template and signature routes share: the registry's refusals as HTTP answers, and the
body of a rejection.

Answers: 404 for an unknown entry, 409 for a step its state does not allow, 422 for bad input
(placeholder syntax, category, opt-out wording on submit or approve), each with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException
from pydantic import BaseModel, Field

from nudge.errors import ApprovalRefused, InvalidInput, NotFound
from starter.api.errors import invalid


class Rejection(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="Why, as the provider or reviewer said.")


@contextmanager
def registry_answers() -> Iterator[None]:
    """The registry's refusals as HTTP answers, with its reason as the detail."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    except ApprovalRefused as exc:
        if exc.conflict:
            raise HTTPException(409, detail=str(exc)) from exc
        raise invalid(str(exc)) from exc
    except InvalidInput as exc:
        raise invalid(str(exc)) from exc
