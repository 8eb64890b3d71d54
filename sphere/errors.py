"""One error type, one renderer.

Services raise :class:`ApplicationError` subclasses; the DRF exception handler below turns
them, DRF's own exceptions and Django's into the API's error body (docs/api.md)
``{"code", "message", "fields"?}``. The WebSocket gateway renders the same codes as ``error``
frames.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from sphere.formats import iso

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    status = 400
    code = "invalid"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields = fields
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.fields)


class Invalid(ApplicationError):
    status, code = 400, "invalid"


class Forbidden(ApplicationError):
    status, code = 403, "forbidden"


class Banned(Forbidden):
    code = "banned"


class Muted(Forbidden):
    """A muted member's act refused; the error says when the mute ends (``muted_until``, in
    the body and the socket's ``error`` frame, and in the message)."""

    code = "muted"

    def __init__(self, muted_until: datetime) -> None:
        self.muted_until = iso(muted_until)
        super().__init__(f"You are muted in this community until {self.muted_until}.")

    def body(self) -> dict[str, Any]:
        return {**super().body(), "muted_until": self.muted_until}


class NotFound(ApplicationError):
    status, code = 404, "not_found"

    def __init__(self, message: str = "Not found.", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class Conflict(ApplicationError):
    status, code = 409, "conflict"


class Gone(ApplicationError):
    status, code = 410, "gone"


class RateLimited(ApplicationError):
    status, code = 429, "rate_limited"


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return body


def _flatten(detail: Any) -> Any:
    """DRF validation details as plain strings (lists of messages per field)."""
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(value) for value in detail]
    return str(detail)


def _retry_after_header(seconds: float | None) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))} if seconds is not None else {}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error leaves as the API's error body."""
    if isinstance(exc, ApplicationError):
        return Response(exc.body(), status=exc.status, headers=_retry_after_header(exc.retry_after))
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_body("forbidden", "Forbidden."), status=403)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("too_large", "Request body too large."), status=413)
    if not isinstance(exc, drf.APIException):
        return None  # a real bug: Django logs it and answers with the JSON 500 handler

    headers: dict[str, str] = {}
    if isinstance(exc, drf.ParseError):
        # The API's 400 ``invalid`` always names fields; a body that is not JSON has none.
        message = str(exc.detail)
        return Response(error_body("invalid", message, {"non_field_errors": [message]}), status=400)
    if isinstance(exc, drf.ValidationError):
        fields = _flatten(exc.detail)
        if not isinstance(fields, dict):
            fields = {"non_field_errors": fields}
        return Response(error_body("invalid", "Invalid input.", fields), status=400)
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        status, code = 401, "unauthenticated"
        authenticate = getattr(exc, "auth_header", None)
        if authenticate:
            headers["WWW-Authenticate"] = authenticate
    elif isinstance(exc, drf.Throttled):
        status, code = 429, "rate_limited"
        wait = getattr(exc, "wait", None)
        headers.update(_retry_after_header(wait if wait is not None else 1))
    else:
        status = exc.status_code
        code = {
            400: "invalid",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            406: "not_acceptable",
            413: "too_large",
            415: "unsupported_media_type",
        }.get(status, "error")
    message = str(exc.detail) if not isinstance(exc.detail, dict | list) else "Request refused."
    return Response(error_body(code, message), status=status, headers=headers)


_STATUS_CODES = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    410: "gone",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


def json_error(status: int, message: str | None = None, code: str | None = None) -> JsonResponse:
    code = code or _STATUS_CODES.get(status, "error")
    return JsonResponse(
        error_body(code, message or code.replace("_", " ").capitalize() + "."), status=status
    )


def handler404(request: Any, exception: Exception | None = None) -> JsonResponse:
    return json_error(404, "Not found.")


def handler500(request: Any) -> JsonResponse:
    return json_error(500, "Internal error; it has been logged.")


def handler400(request: Any, exception: Exception | None = None) -> JsonResponse:
    return json_error(400, "Bad request.")


def handler403(request: Any, exception: Exception | None = None) -> JsonResponse:
    return json_error(403, "Forbidden.")


def login_locked_out(request: HttpRequest, response: Any = None, credentials: Any = None) -> Any:
    """django-axes' answer to a locked-out login: the API's 429 body on the API, plain
    text on the admin's login page; ``Retry-After`` either way."""
    from django.conf import settings
    from django.http import HttpResponse

    retry = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    message = "Too many failed logins; try again later."
    locked: HttpResponse
    if request.path.startswith("/api/"):
        locked = JsonResponse(error_body("rate_limited", message), status=429)
    else:
        locked = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    locked["Retry-After"] = retry
    return locked
