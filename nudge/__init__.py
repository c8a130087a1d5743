"""Nudge's shared kernel: settings, logging, domain models and the store."""
