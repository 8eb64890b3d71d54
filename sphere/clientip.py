"""The client's address, as the API's throttles and ``/metrics`` see it: with
``SPHERE_NUM_PROXIES`` trusted proxies in front, the entry they appended to ``X-Forwarded-For``
(never the left-most entry, which the client writes and ``daphne --proxy-headers`` copies into
``REMOTE_ADDR``); else the socket's peer."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    proxies = int(settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0)
    remote = str(request.META.get("REMOTE_ADDR", ""))
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return remote
