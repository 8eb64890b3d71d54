"""Every list is ``{results, next}`` (docs/api.md)."""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from sphere.errors import Invalid


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def get_page_number(self, request: Request, paginator: Any) -> Any:
        """A page that is not a positive integer (or ``last``) is 400 ``invalid``; DRF answers
        404 for it as for a page past the end, which stays 404."""
        number = super().get_page_number(request, paginator)
        if number in self.last_page_strings:
            return number
        try:
            value = int(number)
        except (TypeError, ValueError):
            value = 0
        if value < 1:
            raise Invalid("Invalid page.", fields={"page": ["A positive integer is required."]})
        return value

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "format": "uri", "nullable": True},
            },
        }
