"""OpenAPI post-processing: document the API's error answers (docs/api.md) on every operation."""

from __future__ import annotations

from typing import Any

_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_ERRORS = {
    "400": "Invalid input (`invalid`, with `fields`).",
    "401": "No or bad credentials (`unauthenticated`).",
    "403": "Not allowed (`forbidden`, `banned`, `muted`).",
    "404": "Missing, or not visible to the caller (`not_found`).",
    "405": "Method not allowed (`method_not_allowed`).",
    "409": "Conflicts with the current state (`conflict`).",
    "410": "No longer usable (`gone`).",
    "413": "Request body over 64 KiB (`too_large`).",
    "415": "Not JSON (`unsupported_media_type`).",
    "429": "Rate limited (`rate_limited`, `slow_mode`), with `Retry-After`.",
}
_PUBLIC = {"/api/v1/auth/register", "/api/v1/auth/token", "/api/v1/auth/login"}


def add_error_responses(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": True},
            "retry_after": {"type": "number"},
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
            responses = operation["responses"]
            for status, description in _ERRORS.items():
                if status == "401" and path in _PUBLIC:
                    continue
                if status in {"413", "415"} and method not in {"post", "put", "patch"}:
                    continue
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": _ERROR_REF}},
                    },
                )
    return result
