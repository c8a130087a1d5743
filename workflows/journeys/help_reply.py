"""HelpReply: answer a HELP or INFO reply with the brand and a contact (the ``help_reply`` template)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.journey import Journey, Reentry

with workflow.unsafe.imports_passed_through():
    from nudge.models import Category, Event


class HelpReply(Journey):
    """Answer a HELP or INFO reply with the brand and a contact (the ``help_reply`` template).

    At most one answer per customer in ``reentry``: a HELP that an auto-responder bounces back
    must not start a loop of replies.
    """

    trigger = "help_requested"
    reentry = Reentry.after(timedelta(minutes=10))
    category = Category.TRANSACTIONAL

    async def steps(self, event: Event) -> None:
        await self.send_sms("help_reply", required=True)
