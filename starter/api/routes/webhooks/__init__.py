"""Provider callbacks, one module per provider, each in that provider's own format: delivery
receipts and customers' replies.

Every handler is idempotent (redeliveries are stored, and only ever move a status forward) and
accepts receipts for sends it has not recorded yet.
"""
