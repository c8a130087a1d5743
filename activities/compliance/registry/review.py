"""Review, the same for templates and signatures::

    draft --submit--> pending --approve--> approved
      |                  \\--reject--> rejected
      \\--approve--> approved        (an operator who checked the text in the provider's console)

- ``reject`` also works on a draft, and on an approved entry (a provider withdrew it): it stops
  being sent.
- Repeating a step that already happened (approving an approved entry) changes nothing; a
  second ``reject`` only replaces the reason.
- Editing a template's body, category, codes or signature makes it a draft again, whatever its
  state (``entries``), as Aliyun's console re-reviews a modified template. A rejected entry comes
  back, as a draft, through a put: an edit, or the same text put again.
- Submit and approve refuse a template whose wording breaks its locale's rule
  (``nudge.wording``: 拒收请回复R at the end of a Chinese marketing template, "Reply STOP to opt out"
  elsewhere, no opt-out wording in a Chinese notification).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance.registry.names import normalise_language, template_label
from nudge.errors import ApprovalRefused, NotFound
from nudge.logging import get_logger
from nudge.models import Category
from nudge.store import SmsSignature, SmsTemplate, utcnow
from nudge.templates import ApprovalStatus
from nudge.wording import approval_problem

log = get_logger(__name__)

Action = Literal["submit", "approve", "reject"]
_TARGET: dict[Action, ApprovalStatus] = {
    "submit": ApprovalStatus.PENDING,
    "approve": ApprovalStatus.APPROVED,
    "reject": ApprovalStatus.REJECTED,
}
_ALLOWED_FROM: dict[Action, frozenset[ApprovalStatus]] = {
    "submit": frozenset({ApprovalStatus.DRAFT}),
    "approve": frozenset({ApprovalStatus.DRAFT, ApprovalStatus.PENDING}),
    "reject": frozenset({ApprovalStatus.DRAFT, ApprovalStatus.PENDING, ApprovalStatus.APPROVED}),
}
_PAST = {"submit": "submitted", "approve": "approved", "reject": "rejected"}
_HINT = {
    ApprovalStatus.DRAFT: "submit or approve it",
    ApprovalStatus.PENDING: "approve or reject it",
    ApprovalStatus.APPROVED: "reject withdraws it; a template whose text is put again is reviewed anew",
    ApprovalStatus.REJECTED: "put it again (it becomes a draft), then submit it",
}

Row = TypeVar("Row", SmsTemplate, SmsSignature)


def set_status(
    row: SmsTemplate | SmsSignature, status: ApprovalStatus, *, reason: str | None, by: str | None
) -> None:
    """Put ``row`` in ``status`` (not committed), stamping when and who; only approved rows keep
    ``approved_at``."""
    now = utcnow()
    row.status = status.value
    row.reason = reason
    row.changed_by = by
    row.updated_at = now
    if status is ApprovalStatus.APPROVED:
        row.approved_at = now
    else:
        row.approved_at = None


class Review:
    """Moves templates and signatures along the review, each under a row lock.

    Args:
        sessions: write sessions on the store.
        ready: awaited before every move (the registry seeds the tables first).
        changed: called after every move that changed a row (the registry drops its snapshot).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ready: Callable[[], Awaitable[None]],
        changed: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._ready = ready
        self._changed = changed

    async def template(
        self,
        code: str,
        language: str | None,
        action: Action,
        *,
        reason: str | None = None,
        by: str | None = None,
    ) -> SmsTemplate:
        """Submit, approve or reject one template variant; submit and approve check its wording."""

        def wording(row: SmsTemplate) -> str | None:
            if action == "reject":
                return None
            return approval_problem(row.body, Category(row.category), row.language)

        key = (code, normalise_language(language))
        return await self._move(
            SmsTemplate, key, action, label=template_label(*key), reason=reason, wording=wording, by=by
        )

    async def signature(
        self, name: str, action: Action, *, reason: str | None = None, by: str | None = None
    ) -> SmsSignature:
        """Submit, approve or reject one signature or sender."""
        return await self._move(SmsSignature, name, action, label=repr(name), reason=reason, by=by)

    async def _move(
        self,
        model: type[Row],
        key: str | tuple[str, str],
        action: Action,
        *,
        label: str,
        reason: str | None = None,
        wording: Callable[[Row], str | None] | None = None,
        by: str | None = None,
    ) -> Row:
        await self._ready()
        kind = "template" if model is SmsTemplate else "signature"
        if action == "reject" and not (reason or "").strip():
            raise ApprovalRefused(
                f"rejecting {kind} {label} needs a reason", action=action, status="", conflict=False
            )
        async with self._sessions() as session:
            row = await session.get(model, key, with_for_update=True)
            if row is None:
                raise NotFound(f"unknown {kind} {label}", kind=kind, name=label)
            current = ApprovalStatus(row.status)
            target = _TARGET[action]
            if current is target and action != "reject":
                return row
            if current is not target and current not in _ALLOWED_FROM[action]:
                raise ApprovalRefused(
                    f"cannot {action} {kind} {label}: it is {current.value}; {_HINT[current]}",
                    action=action,
                    status=current.value,
                    conflict=True,
                )
            problem = wording(row) if wording is not None else None
            if problem is not None:
                raise ApprovalRefused(
                    f"cannot {action} {kind} {label}: {problem}",
                    action=action,
                    status=current.value,
                    conflict=False,
                )
            set_status(row, target, reason=reason.strip() if reason else None, by=by)
            session.add(row)
            await session.commit()
        self._changed()
        log.info(f"{kind}_{_PAST[action]}", name=label, previous=current.value, reason=row.reason, by=by)
        return row
