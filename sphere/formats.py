"""Wire formats shared by every app."""

from __future__ import annotations

from datetime import datetime


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as the API writes times (docs/api.md)."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
