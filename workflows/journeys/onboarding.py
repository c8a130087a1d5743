"""Onboarding: welcome a new customer: returning customers get a welcome back, new ones an A/B welcome."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.journey import Journey, JourneyConfig, Reentry

with workflow.unsafe.imports_passed_through():
    from nudge.models import Event


class Onboarding(Journey):
    """Welcome a new customer: returning customers get a welcome back, new ones an A/B welcome."""

    trigger = "signed_up"
    goal = "order_paid"
    reentry = Reentry.NEVER

    class Config(JourneyConfig):
        welcome_delay: timedelta = timedelta(minutes=5)
        activation_window: timedelta = timedelta(days=3)
        start_url: str = "https://shop.example.com/start"
        welcome_bandit: bool = False
        """Shift new customers toward the welcome copy that draws more clicks (a Thompson-sampling
        bandit) instead of keeping the 50/50 split."""

    config: Config

    async def steps(self, event: Event) -> None:
        await self.sleep(self.config.welcome_delay)
        profile = await self.profile()
        name = profile.name or "there"
        if profile.lifecycle_stage in ("returning", "dormant"):
            await self.send_sms("welcome_back", {"name": name, "start_url": self.config.start_url})
        else:
            variant = await self.split("welcome_copy", {"a": 50, "b": 50}, bandit=self.config.welcome_bandit)
            await self.send_sms(f"welcome_{variant}", {"name": name, "start_url": self.config.start_url})
        await self.sleep(self.config.activation_window)
        self.exit("not_activated")
