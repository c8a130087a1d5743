"""Nudge's exception hierarchy.

NudgeError
├── InvalidInput           bad data from a caller (4xx / CLI exit 2)
│   ├── InvalidPhoneNumber
│   └── TemplateError      unknown template, missing or mistyped variable
└── ProviderError          a provider refused or failed a send
    ├── RetryableProviderError   throttled, 5xx, network: retry with backoff
    └── PermanentProviderError   bad number, bad template: never retried
"""

from __future__ import annotations


class NudgeError(Exception):
    """Root of every error Nudge raises on purpose."""


class InvalidInput(NudgeError):
    """The caller sent something Nudge cannot accept."""


class InvalidPhoneNumber(InvalidInput):
    """A phone number that cannot be parsed or is not valid."""


class TemplateError(InvalidInput):
    """A template is unknown, or its variables are missing or of the wrong type."""


class ProviderError(NudgeError):
    """A provider did not accept a message."""

    def __init__(self, message: str, *, code: str, provider: str) -> None:
        super().__init__(message)
        self.code = code
        self.provider = provider


class RetryableProviderError(ProviderError):
    """Worth retrying later: throttling, a 5xx, a network error before the request was read."""


class PermanentProviderError(ProviderError):
    """Retrying cannot help: the number, template or parameters are wrong."""
