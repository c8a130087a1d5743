"""Provider adapters behind one interface, ``Provider``."""

from activities.providers.base import OutboundSms, Provider, Submission
from activities.providers.simulator import SimulatorProvider

__all__ = ["OutboundSms", "Provider", "SimulatorProvider", "Submission"]
