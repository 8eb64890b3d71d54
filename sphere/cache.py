"""What the default cache is: it decides where rate windows and typing slots are counted."""

from __future__ import annotations

from django.conf import settings


def cache_is_shared() -> bool:
    """True when the default cache is a server shared by every process (Redis): each call is
    a network round trip, to be kept off an event loop, and counts hold across processes."""
    return "redis" in str(settings.CACHES["default"]["BACKEND"]).lower()
