"""Kept for ``nudge gateway``, which serves ``starter.gateway:create_app``; the app lives in
``starter.api``."""

from starter.api.app import create_app

__all__ = ["create_app"]
