"""What the routes call: the writes (and the reads behind them), free of HTTP.

``intake`` routes events to journeys; ``receipts``, ``replies`` and ``clicks`` carry the feedback
back (``feedback`` holds what they share); ``customers``, ``consent`` and ``pauses`` serve the
admin API.
"""
