"""Per-user and per-client rate limits whose rates are settings (``THROTTLE_RATES``).

DRF's stock throttles bind their rates when the class is defined; these read them on each
request so that an operator's environment (and a test's override) is always what applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

if TYPE_CHECKING:  # rest_framework.views imports this module through its settings
    from rest_framework.request import Request
    from rest_framework.views import APIView


class _SettingsRateThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        rates: dict[str, str] = settings.THROTTLE_RATES
        return rates.get(self.scope or "")


class UserThrottle(_SettingsRateThrottle):
    """Every authenticated call, counted per user; anonymous calls per client address."""

    scope = "user"

    def get_cache_key(self, request: Request, view: APIView) -> str:
        if request.user and request.user.is_authenticated:
            ident = f"u{request.user.pk}"
        else:
            ident = f"a{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AuthThrottle(_SettingsRateThrottle):
    """Register, token and login: counted per client address against credential guessing."""

    scope = "auth"

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
