"""The carrier's rate limits: a token bucket per provider account, refilled at its TPS."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    tokens: float
    updated: float = field(default_factory=time.monotonic)

    def take(self, rate: float) -> bool:
        burst = max(1.0, rate)
        moment = time.monotonic()
        self.tokens = min(burst, self.tokens + (moment - self.updated) * rate)
        self.updated = moment
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
