"""``/metrics``: the process's Prometheus metrics (fan-out counters, connections, latency; in
the scaled mode also per-partition lag, pending and dead letters read from Redis).

Who may scrape (docs/operations.md, "Metrics"): with ``SPHERE_METRICS_TOKEN`` set, whoever
brings it as a bearer token. Without it, behind a proxy (``SPHERE_BEHIND_PROXY``) nobody: the
proxy's own address, and the ``X-Forwarded-For`` that ``daphne --proxy-headers`` copies into the
request's peer address (its left-most entry, which the client writes), prove nothing. Without a
proxy, loopback and private addresses, judged on the trusted hop (``sphere.clientip``).
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

import fanout.metrics  # noqa: F401 - registers the tier's metrics and collector
from sphere.clientip import client_ip
from sphere.errors import error_body


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())
    if settings.BEHIND_PROXY:
        return False
    try:
        address = ipaddress.ip_address(client_ip(request))
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
