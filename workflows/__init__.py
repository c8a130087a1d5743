"""Deterministic orchestration: the journey runtime and the journeys a worker runs.

Reading order: ``journey`` (the base class and the building blocks a journey is written with),
``options`` (re-entry, tunable parameters), ``sms`` (what a send returns), ``lifecycle`` (state,
signals, the query and the run loop around ``steps``), ``policies`` (timeouts and retries),
``keys`` (workflow ids, idempotency keys, A/B buckets), ``humanize``, then ``journeys`` (the
library).
"""

from workflows.journey import Journey, JourneyConfig, Reentry
from workflows.journeys import JOURNEYS
from workflows.journeys.cart_abandonment import CartAbandonment
from workflows.journeys.help_reply import HelpReply
from workflows.journeys.onboarding import Onboarding
from workflows.journeys.payment_success import PaymentSuccess
from workflows.sms import SmsHandle

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
