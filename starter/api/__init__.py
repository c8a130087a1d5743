"""The HTTP gateway, by role: ``app`` builds it, ``deps`` holds what routes depend on, ``routes``
has one router per resource, and ``services`` does the writes."""

from starter.api.app import create_app

__all__ = ["create_app"]
