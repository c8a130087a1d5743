"""Prometheus metrics: what the gateway and the worker count, in the process-wide registry that
``/metrics`` exposes (``prometheus-client``).

Every label has a bounded set of values: providers, routes and categories come from the
configuration, statuses and decisions from enums, reasons are cut to their kind (``unreachable``,
``quiet_hours``, ``paused``). No customer id, phone number, message id or template parameter is
ever a label.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

EVENTS = Counter("nudge_events", "Behaviour events the gateway took", ["outcome"])
"""``outcome``: ``routed`` (stored, journeys started or signalled) or ``duplicate``."""
RECEIPTS = Counter("nudge_receipts", "Delivery receipts stored", ["provider", "status", "applied"])
CLICKS = Counter("nudge_clicks", "Short-link requests", ["counted", "bot"])
"""``counted``: a person's click (``true``) or a bot's; ``bot``: why (``head``, ``user_agent``,
``too_soon``)."""
REPLIES = Counter("nudge_replies", "Customers' replies stored", ["provider", "keyword"])
CONVERSIONS = Counter("nudge_conversions", "Goal events credited to a message", ["journey"])
WEBHOOK_SECONDS = Histogram(
    "nudge_webhook_seconds",
    "Time to answer a provider's webhook",
    ["provider", "kind"],
    buckets=LATENCY_BUCKETS,
)
PAUSES = Counter("nudge_pauses", "Scopes paused", ["scope", "source"])
DECISIONS = Counter("nudge_send_decisions", "The gate's decisions", ["decision", "reason", "category"])
"""One per message decided: ``sent``, ``blocked``, ``deferred``, ``capped``, ``suppressed``, with
the reason's kind."""
SENDS = Counter("nudge_messages_sent", "Messages a provider took", ["provider", "route", "category"])
PROVIDER_SECONDS = Histogram(
    "nudge_provider_request_seconds",
    "Time of one send request to a provider",
    ["provider", "route", "outcome"],
    buckets=LATENCY_BUCKETS,
)
"""``outcome``: ``accepted``, ``deferred``, ``refused`` (permanent), ``account``, ``retryable``, ``error``."""
STREAM_EVENTS = Counter("nudge_stream_events", "Events handed to the stream's sinks", ["sink", "outcome"])
"""``sink``: a configured sink's name; ``outcome``: ``delivered``, ``failed`` (one attempt; retried),
``refused`` (one event refused alone, for good; retried until it is parked) or ``parked`` (given up)."""


def reason_kind(reason: str | None) -> str:
    """The bounded part of a gate reason: ``unreachable:reply:stop`` -> ``unreachable``,
    ``deferred:quiet_hours`` -> ``quiet_hours``."""
    if not reason:
        return ""
    kind = reason.removeprefix("deferred:").split(":", 1)[0]
    return kind.split("=", 1)[0][:40]
