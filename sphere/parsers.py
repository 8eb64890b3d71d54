"""The request parser of the REST API (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``)."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions as drf
from rest_framework import parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, answering 400 ``invalid`` for nesting too deep to decode.

    The stdlib decoder recurses once per level: a few KB of brackets exhaust the recursion
    limit, and the RecursionError would otherwise escape DRF as a 500. No API body nests
    more than two levels, so refusing it as malformed loses nothing.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise drf.ParseError("JSON parse error - nested too deeply.") from None
