"""Deterministic orchestration: the journey runtime and the journeys a worker runs."""

from workflows.journeys import CartAbandonment, HelpReply, Onboarding, PaymentSuccess
from workflows.runtime import Journey, JourneyConfig, Reentry, SmsHandle

JOURNEYS: tuple[type[Journey], ...] = (CartAbandonment, PaymentSuccess, Onboarding, HelpReply)
"""The journeys the worker runs and the gateway routes events to."""

__all__ = [
    "JOURNEYS",
    "CartAbandonment",
    "HelpReply",
    "Journey",
    "JourneyConfig",
    "Onboarding",
    "PaymentSuccess",
    "Reentry",
    "SmsHandle",
]
