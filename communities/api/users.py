"""Finding people to talk to (docs/dms.md)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from communities import selectors
from communities.api.serializers import UserSerializer
from sphere.schema import errors


class UserSearchQuery(serializers.Serializer):
    q = serializers.CharField(
        min_length=1, max_length=32, help_text="The start of a username, any case."
    )


@extend_schema(tags=["direct messages"])
class UserSearchView(generics.ListAPIView):
    serializer_class = UserSerializer

    @extend_schema(
        summary="Find users to message",
        description="Active users sharing a community with the caller whose username starts "
        "with `q` (any case), by username; the caller is not listed.",
        parameters=[UserSearchQuery],
        responses={200: UserSerializer(many=True), **errors({400: "No `q` (`invalid`)."})},
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        query = UserSearchQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.users_search(user=self.request.user, q=query.validated_data["q"])
