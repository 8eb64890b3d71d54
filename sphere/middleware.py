"""HTTP edges that must hold before any view runs."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from sphere.errors import json_error

# Paths whose every answer, Django's own included, is the API's JSON error body (docs/api.md).
_JSON_PREFIXES = ("/api/", "/healthz", "/metrics")


class BodySizeLimitMiddleware:
    """Answer 413 ``too_large`` for a body over ``MAX_REQUEST_BODY`` before anything parses it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.MAX_REQUEST_BODY
        declared = request.META.get("CONTENT_LENGTH") or ""
        try:
            length = int(declared) if declared else None
        except ValueError:
            return json_error(400, "Malformed Content-Length.")
        if length is not None and length > limit:
            return json_error(413, f"Request body over {limit} bytes.")
        if length is None and request.method in {"POST", "PUT", "PATCH"}:
            # A body without a declared length (chunked): read at most one byte past the limit.
            data = request.read(limit + 1)
            if len(data) > limit:
                return json_error(413, f"Request body over {limit} bytes.")
            request._body = data
        return self.get_response(request)


class NulByteMiddleware:
    """Answer 400 for a NUL byte in an API path or query string.

    PostgreSQL text cannot hold NUL; refusing it at the edge keeps every selector from having
    to (request bodies are checked by the serializers' own NUL validator).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(_JSON_PREFIXES) and (
            "\x00" in request.path
            or any("\x00" in key or "\x00" in value for key, value in request.GET.items())
        ):
            return json_error(400, "NUL characters are not allowed in a path or query.")
        return self.get_response(request)


class ApiErrorBodyMiddleware:
    """Give Django's own non-JSON error pages under ``/api/`` the API's error body (docs/api.md).

    URL resolution failures and CSRF refusals happen outside DRF's exception handler; this keeps
    clients from ever seeing an HTML error page from the API.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and request.path.startswith(_JSON_PREFIXES)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            replaced = json_error(response.status_code)
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if header in response:
                    replaced[header] = response[header]
            return replaced
        return response
