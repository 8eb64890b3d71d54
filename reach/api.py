"""Link reach of a community over REST (docs/api.md, "Link reach"), for moderators and up."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.links import MAX_URL_LENGTH, normalize_url
from communities.roles import Role
from communities.selectors import community_get_for_role
from reach.selectors import link_reach_for
from sphere.schema import errors

_URL_HELP = (
    "An http or https URL, up to 2,048 characters. Compared after lower-casing the scheme and "
    "host and dropping the fragment and a trailing slash; the query is kept."
)


# Query string: other parameters are ignored as usual for a query; an empty `url` is missing.
class ReachQuery(serializers.Serializer):
    url = serializers.CharField(max_length=MAX_URL_LENGTH, help_text=_URL_HELP)

    def validate_url(self, value: str) -> str:
        normalized = normalize_url(value)
        if normalized is None:
            raise serializers.ValidationError("Not an http or https URL.")
        return normalized


class ReachSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="The URL as compared: normalized.")
    reach = serializers.IntegerField(
        help_text="Distinct users who could read the room when a message carrying the URL was "
        "fanned out, over the rooms of the community the caller can read (exact in the "
        "embedded mode, within 2 % on Redis)."
    )
    shares = serializers.IntegerField(
        help_text="Messages carrying the URL in the rooms of the community the caller can read."
    )


def _query(request: Request) -> dict[str, Any]:
    serializer = ReachQuery(data={"url": request.query_params.get("url", "")})
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@extend_schema(tags=["moderation"])
class ReachView(APIView):
    @extend_schema(
        summary="Link reach of a URL in the community (moderator and up)",
        description="`reach`: the distinct users who could read the room, author included, "
        "when a message carrying the URL was fanned out, over every such message of the "
        "community; `shares`: the number of those messages. Only rooms the caller can read "
        "count (a private room they are not in adds nothing). An unknown URL answers 0 and 0. "
        "A private community is 404 to non-members; members below moderator get 403.",
        parameters=[ReachQuery],
        responses={
            200: ReachSerializer,
            **errors(
                {
                    403: "Below moderator (`forbidden`).",
                    503: "The fan-out store is unavailable (`unavailable`).",
                }
            ),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        community = community_get_for_role(user=request.user, slug=slug, minimum=Role.MODERATOR)
        url = _query(request)["url"]
        reach, shares = link_reach_for(actor=request.user, community=community, url=url)
        return Response({"url": url, "reach": reach, "shares": shares})
