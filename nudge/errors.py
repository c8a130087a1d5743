"""Nudge's exception hierarchy.

NudgeError
├── ConfigurationError     settings that cannot work safely together (refused at start-up)
├── InvalidInput           bad data from a caller (4xx / CLI exit 2)
│   ├── InvalidPhoneNumber
│   ├── InvalidEvent       an event's properties do not fit the model a journey reads them as
│   ├── TemplateError      unknown template, missing or mistyped variable, malformed body
│   ├── NotFound           no such template variant or signature in the registry
│   └── ApprovalRefused    a review step the entry's state or text does not allow
└── ProviderError          a provider refused or failed a send
    ├── RetryableProviderError   throttled, 5xx: retry with backoff
    ├── DeferredProviderError    a per-number frequency limit: retry after ``retry_at``
    ├── AccountProviderError     balance, suspension, daily cap, credentials: pause the route
    └── PermanentProviderError   bad number, template or content: never retried

Errors that belong to one layer sit next to their code, under the same root: ``NoRoute``
(``activities/routing.py``), ``StackError`` (``starter/stack.py``), the API services' ``Unknown*``
and ``Invalid*`` errors, the gateway client's ``ClientError`` (``Refused``, ``Unavailable``:
``nudge/client``). ``tests/unit/test_errors.py`` finds any exception class outside it.
"""

from __future__ import annotations

from datetime import datetime


class NudgeError(Exception):
    """Root of every error Nudge raises on purpose."""


class ConfigurationError(NudgeError):
    """The settings cannot work safely as they are; the process refuses to start with them."""


class InvalidInput(NudgeError):
    """The caller sent something Nudge cannot accept."""


class InvalidPhoneNumber(InvalidInput):
    """A phone number that cannot be parsed or is not valid."""


class InvalidEvent(InvalidInput):
    """An event's properties do not fit the model a journey parses them as (``Event.parse``)."""

    def __init__(self, message: str, *, fields: list[str]) -> None:
        super().__init__(message)
        self.fields = fields


class TemplateError(InvalidInput):
    """A template is unknown, or its variables are missing or of the wrong type."""


class NotFound(InvalidInput):
    """The registry has no such template variant or signature."""

    def __init__(self, message: str, *, kind: str, name: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name


class ApprovalRefused(InvalidInput):
    """A review step that cannot happen: the entry's ``status`` does not allow ``action``
    (``conflict``), or its text breaks a rule (the opt-out wording: not ``conflict``)."""

    def __init__(self, message: str, *, action: str, status: str, conflict: bool) -> None:
        super().__init__(message)
        self.action = action
        self.status = status
        self.conflict = conflict


class ProviderError(NudgeError):
    """A provider did not accept a message."""

    def __init__(self, message: str, *, code: str, provider: str) -> None:
        super().__init__(message)
        self.code = code
        self.provider = provider


class RetryableProviderError(ProviderError):
    """Worth retrying later: throttling, a 5xx.

    ``ambiguous`` means the provider may have accepted the message anyway (a 5xx after the
    request was read): the retry must look the message up before it sends again. ``throttled``
    means the provider refused it for the caller's request rate (never processed): a broadcast
    slows down and sends it again.
    """

    def __init__(
        self, message: str, *, code: str, provider: str, ambiguous: bool = False, throttled: bool = False
    ) -> None:
        super().__init__(message, code=code, provider=provider)
        self.ambiguous = ambiguous
        self.throttled = throttled and not ambiguous


class DeferredProviderError(ProviderError):
    """The provider limits how often this number may get messages; try again at ``retry_at``.

    Not a failure of the route, and not counted against the activity's retries.
    """

    def __init__(self, message: str, *, code: str, provider: str, retry_at: datetime) -> None:
        super().__init__(message, code=code, provider=provider)
        self.retry_at = retry_at


class AccountProviderError(ProviderError):
    """The account cannot send at all (balance, suspension, daily cap, credentials).

    The message was not sent; the route is paused and ops are alerted.
    """


class PermanentProviderError(ProviderError):
    """Retrying cannot help: the number, template or parameters are wrong.

    ``opted_out`` means the provider knows the recipient unsubscribed (e.g. Twilio 21610);
    ``unreachable`` means the number itself is invalid, not a mobile, or blocked by its carrier
    (Aliyun ``isv.MOBILE_NUMBER_ILLEGAL``, Twilio 21211): nothing of any kind goes to it again.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        provider: str,
        opted_out: bool = False,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message, code=code, provider=provider)
        self.opted_out = opted_out
        self.unreachable = unreachable
