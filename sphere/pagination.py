"""Every list is ``{results, next}`` (docs/api.md)."""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from sphere.errors import Invalid

# Cursors of message history; a page-numbered list refuses them rather than ignore them.
SEQ_CURSORS = ("after_seq", "before_seq")


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        """A seq cursor (``after_seq``, ``before_seq``) on a page-numbered list is 400
        ``invalid`` naming ``page``, instead of a first page that looks like an answer (an
        empty value counts as absent)."""
        given = [name for name in SEQ_CURSORS if request.query_params.get(name)]
        if given:
            hint = f"This list pages with {self.page_query_param} (and limit), not by seq."
            raise Invalid("Invalid paging.", fields={name: [hint] for name in given})
        return super().paginate_queryset(queryset, request, view)

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

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """``page`` as it is read: a positive integer or ``last``; ``limit`` as it is clamped."""
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "A page number from 1, or `last`; past the end: 404.",
                "schema": {
                    "oneOf": [
                        {"type": "integer", "minimum": 1},
                        {"type": "string", "enum": list(self.last_page_strings)},
                    ]
                },
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Results per page: {self.page_size} by default, at most "
                f"{self.max_page_size} (a larger value counts as {self.max_page_size}; one that "
                "is not a positive integer as the default).",
                "schema": {"type": "integer"},
            },
        ]

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "format": "uri", "nullable": True},
            },
        }
