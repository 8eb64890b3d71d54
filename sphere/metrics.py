"""``/metrics``: the process's Prometheus metrics (fan-out counters, connections, latency; in
the scaled mode also per-partition lag, pending and dead letters read from Redis).

With ``SPHERE_METRICS_TOKEN`` set, a scrape must bring it as a bearer token; without it, only
loopback and private addresses may scrape.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

import fanout.metrics  # noqa: F401 - registers the tier's metrics and collector
from sphere.errors import error_body


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return address.is_loopback or address.is_private


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return JsonResponse(
            error_body("forbidden", "Metrics are not served to this client."), status=403
        )
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
