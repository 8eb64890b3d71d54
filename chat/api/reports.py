"""The report queue over REST (docs/api.md, Reports): list and resolve, for moderators."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors
from chat.api.serializers import ReportSerializer
from chat.models import Report
from chat.services import reports
from communities.api.base import actor, parse
from communities.api.serializers import StrictSerializer
from communities.selectors import community_get_for_viewer
from sphere.errors import Invalid
from sphere.schema import errors


class ResolveIn(StrictSerializer):
    action = serializers.ChoiceField(choices=reports.ACTIONS)
    minutes = serializers.IntegerField(min_value=1, max_value=28 * 24 * 60, required=False)


@extend_schema(tags=["moderation"])
class ReportListView(generics.ListAPIView):
    serializer_class = ReportSerializer

    @extend_schema(
        summary="Reports on messages of rooms the caller can read, newest first",
        description="For moderators and up; `status` keeps the open or the resolved ones.",
        parameters=[OpenApiParameter("status", str, enum=["open", "resolved"])],
        responses={
            200: ReportSerializer(many=True),
            **errors({403: "Below moderator (`forbidden`)."}),
        },
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Report]:
        status = self.request.query_params.get("status") or None
        if status not in (None, *Report.Status.values):
            raise Invalid("Bad status.", fields={"status": ["open or resolved."]})
        community = community_get_for_viewer(user=self.request.user, slug=self.kwargs["slug"])
        return selectors.reports_for_moderator(
            actor=actor(self.request), community=community, status=status
        )


@extend_schema(tags=["moderation"])
class ReportResolveView(APIView):
    @extend_schema(
        summary="Resolve a report",
        description="`dismiss`, `delete_message`, `mute_author` (with `minutes`) or "
        "`ban_author`; the rank rule applies to the author. A report of a room the caller "
        "cannot moderate is 404.",
        request=ResolveIn,
        responses={
            200: ReportSerializer,
            **errors(
                {
                    403: "Not above the author (`forbidden`).",
                    409: "Resolved already, or the author has left (`conflict`).",
                }
            ),
        },
    )
    def post(self, request: Request, report_id: int) -> Response:
        report = selectors.report_get_for_moderator(actor=actor(request), report_id=report_id)
        data = parse(ResolveIn, request)
        report = reports.report_resolve(actor=actor(request), report=report, **data)
        report = selectors.report_get_for_moderator(actor=actor(request), report_id=report.pk)
        return Response(ReportSerializer(report, context={"viewer_id": actor(request).pk}).data)
