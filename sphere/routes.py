"""API routes that answer with and without their trailing slash (docs/api.md, Paths).

Each endpoint is written once, in its documented form; the pattern also matches the other form
and serves it with the same view, without a redirect (a redirected POST would lose its body).
The OpenAPI schema reads the route as written, so it lists every path once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import URLPattern
from django.urls.resolvers import RoutePattern


class SlashOptionalRoutePattern(RoutePattern):
    """A ``path()`` route whose trailing slash is optional."""

    _regex: str

    def __init__(self, route: str, name: str | None = None, is_endpoint: bool = False) -> None:
        super().__init__(route, name=name, is_endpoint=is_endpoint)
        if is_endpoint:
            # The regex ends in ``\Z`` (Django's _route_to_regex); make a final ``/`` optional.
            body = self._regex.removesuffix(r"\Z").removesuffix("/")
            self._regex = body + r"/?\Z"


def api_path(
    route: str, view: Callable[..., Any], kwargs: dict[str, Any] | None = None, name: str = ""
) -> URLPattern:
    """Like ``django.urls.path`` for a view, with the trailing slash optional."""
    pattern = SlashOptionalRoutePattern(route, name=name or None, is_endpoint=True)
    return URLPattern(pattern, view, kwargs, name or None)
