"""The OpenAPI schema's error answers (docs/api.md, "Errors"), operation by operation.

Each operation lists only the errors it can give. Those that follow from its shape are added
here: 401 unless it is public, 400 when it reads a body or a query, 404 when its path names
something or it is a paged list (a page past the end), 413 and 415 when it reads a body, and
429 on every operation (every call counts against a throttle). Those that depend on what the
operation does (403, 409, 410, and any other 400 or 404) are declared on the view with
:func:`errors`. ``make schema`` also fails on an operation without a summary or description.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.drainage import warn
from drf_spectacular.utils import OpenApiResponse

ERROR_REF = {"$ref": "#/components/schemas/Error"}
_ERRORS = {
    400: "Invalid input (`invalid`, with `fields`).",
    401: "No or bad credentials (`unauthenticated`).",
    403: "Not allowed (`forbidden`, `banned`, `muted`).",
    404: "Missing, or not visible to the caller (`not_found`).",
    409: "Conflicts with the current state (`conflict`).",
    410: "No longer usable (`gone`).",
    413: "Request body over 64 KiB (`too_large`).",
    415: "Not JSON (`unsupported_media_type`).",
    429: "Throttled, or over a rate limit (`rate_limited`), with `retry_after` and "
    "`Retry-After` in seconds.",
    503: "A store the answer needs is unavailable (`unavailable`).",
}


def errors(statuses: dict[int, str | None]) -> dict[int, OpenApiResponse]:
    """Error answers for ``extend_schema(responses=...)``: status → why (None: the usual)."""
    return {
        status: OpenApiResponse(response=ERROR_REF, description=why or _ERRORS[status])
        for status, why in statuses.items()
    }


def _shaped(operation: dict[str, Any]) -> set[int]:
    """The errors an operation can give because of its shape (the module's docstring)."""
    parameters = operation.get("parameters", [])
    query = {p["name"] for p in parameters if p.get("in") == "query"}
    has_path = any(p.get("in") == "path" for p in parameters)
    has_body = "requestBody" in operation
    statuses = {429}
    if any(requirement for requirement in operation.get("security", [])):
        statuses.add(401)
    if has_body or query:
        statuses.add(400)
    if has_path or "page" in query:
        statuses.add(404)
    if has_body:
        statuses |= {413, 415}
    return statuses


def add_error_responses(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": True},
            "retry_after": {
                "type": "number",
                "description": "Seconds to wait (`rate_limited`, `slow_mode`).",
            },
            "muted_until": {
                "type": "string",
                "format": "date-time",
                "description": "When the caller's mute ends (`muted`).",
            },
        },
    }
    # Request bodies refuse unknown fields (400), and the schema says so.
    for name, component in schemas.items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            label = f"{method.upper()} {path}"
            if not operation.get("summary") or not operation.get("description"):
                warn(f"{label} needs a summary and a description")
            responses = operation["responses"]
            for status in sorted(_shaped(operation)):
                responses.setdefault(
                    str(status),
                    {
                        "description": _ERRORS[status],
                        "content": {"application/json": {"schema": ERROR_REF}},
                    },
                )
            operation["responses"] = dict(sorted(responses.items()))
    return result
