"""Communities, members, bans, invites, join requests and the audit log (docs/api.md).

Views parse, call one selector or service, and render; every rule lives in the services.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from communities import selectors
from communities.api.base import actor, parse
from communities.api.serializers import (
    AuditEntrySerializer,
    BanIn,
    BanSerializer,
    CommunityCreateIn,
    CommunitySerializer,
    CommunityUpdateIn,
    InviteIn,
    InviteSerializer,
    JoinRequestSerializer,
    MemberSerializer,
    MuteIn,
    RoleIn,
)
from communities.models import Community, JoinRequest, Membership
from communities.roles import Role
from communities.services import communities as community_services
from communities.services import invites, members, moderation


def _community(request: Request, slug: str, minimum: Role | None = None) -> Community:
    """The community as the caller may see it; with ``minimum``, only if the caller holds that
    role. Views with a body ask for the least role that may act before validating it, so that
    who may not act learns nothing from a 400; the services check again under lock."""
    if minimum is None:
        return selectors.community_get_for_viewer(user=request.user, slug=slug)
    return selectors.community_get_for_role(user=request.user, slug=slug, minimum=minimum)


def _member_body(membership: Membership) -> dict:
    refreshed = Membership.objects.select_related("user").get(pk=membership.pk)
    return MemberSerializer(refreshed).data


@extend_schema(tags=["communities"])
class CommunityListView(generics.ListAPIView):
    serializer_class = CommunitySerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Text to look for in name, slug, description"),
            OpenApiParameter("mine", OpenApiTypes.BOOL, description="Only the caller's own"),
        ]
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Community]:
        params = self.request.query_params
        mine = params.get("mine", "").lower() in {"1", "true", "yes"}
        return selectors.communities_list(
            user=self.request.user, q=params.get("q", "")[:100], mine=mine
        )

    @extend_schema(request=CommunityCreateIn, responses={201: CommunitySerializer})
    def post(self, request: Request) -> Response:
        data = parse(CommunityCreateIn, request)
        community = community_services.community_create(actor=actor(request), **data)
        body = CommunitySerializer(_community(request, community.slug)).data
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(tags=["communities"])
class CommunityDetailView(APIView):
    @extend_schema(responses={200: CommunitySerializer})
    def get(self, request: Request, slug: str) -> Response:
        return Response(CommunitySerializer(_community(request, slug)).data)

    @extend_schema(request=CommunityUpdateIn, responses={200: CommunitySerializer})
    def patch(self, request: Request, slug: str) -> Response:
        community = _community(request, slug, Role.ADMIN)
        data = parse(CommunityUpdateIn, request)
        community_services.community_update(actor=actor(request), community=community, changes=data)
        return Response(CommunitySerializer(_community(request, slug)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str) -> Response:
        community_services.community_delete(
            actor=actor(request), community=_community(request, slug)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["communities"])
class JoinView(APIView):
    @extend_schema(request=None, responses={200: MemberSerializer, 202: JoinRequestSerializer})
    def post(self, request: Request, slug: str) -> Response:
        community = selectors.community_get_for_join(slug=slug)
        result = members.community_join(actor=actor(request), community=community)
        if isinstance(result, JoinRequest):
            return Response(JoinRequestSerializer(result).data, status=status.HTTP_202_ACCEPTED)
        return Response(_member_body(result))


@extend_schema(tags=["communities"])
class LeaveView(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, slug: str) -> Response:
        members.community_leave(actor=actor(request), community=_community(request, slug))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["members"])
class MemberListView(generics.ListAPIView):
    serializer_class = MemberSerializer

    def get_queryset(self) -> QuerySet[Membership]:
        community = _community(self.request, self.kwargs["slug"], Role.MEMBER)
        return selectors.members_list(community=community)


@extend_schema(tags=["members"])
class MemberDetailView(APIView):
    @extend_schema(request=RoleIn, responses={200: MemberSerializer})
    def patch(self, request: Request, slug: str, user_id: int) -> Response:
        community = _community(request, slug, Role.ADMIN)  # the least that grants (can_grant)
        data = parse(RoleIn, request)
        membership = members.member_set_role(
            actor=actor(request), community=community, user_id=user_id, role=data["role"]
        )
        return Response(_member_body(membership))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, user_id: int) -> Response:
        members.member_kick(
            actor=actor(request), community=_community(request, slug), user_id=user_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["members"])
class MuteView(APIView):
    @extend_schema(request=MuteIn, responses={200: MemberSerializer})
    def post(self, request: Request, slug: str, user_id: int) -> Response:
        community = _community(request, slug, Role.MODERATOR)
        data = parse(MuteIn, request)
        membership = members.member_mute(
            actor=actor(request), community=community, user_id=user_id, minutes=data["minutes"]
        )
        return Response(_member_body(membership))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, user_id: int) -> Response:
        members.member_unmute(
            actor=actor(request), community=_community(request, slug), user_id=user_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["moderation"])
class BanListView(generics.ListAPIView):
    serializer_class = BanSerializer

    def get_queryset(self):
        community = _community(self.request, self.kwargs["slug"], Role.MODERATOR)
        return selectors.bans_list(community=community)

    @extend_schema(request=BanIn, responses={201: BanSerializer})
    def post(self, request: Request, slug: str) -> Response:
        community = _community(request, slug, Role.MODERATOR)
        data = parse(BanIn, request)
        ban = moderation.ban_create(actor=actor(request), community=community, **data)
        return Response(BanSerializer(ban).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["moderation"])
class BanDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, user_id: int) -> Response:
        moderation.ban_lift(
            actor=actor(request), community=_community(request, slug), user_id=user_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["invites"])
class InviteListView(generics.ListAPIView):
    serializer_class = InviteSerializer

    def get_queryset(self):
        community = _community(self.request, self.kwargs["slug"], Role.ADMIN)
        return selectors.invites_list(community=community)

    @extend_schema(request=InviteIn, responses={201: InviteSerializer})
    def post(self, request: Request, slug: str) -> Response:
        community = _community(request, slug, Role.ADMIN)
        data = parse(InviteIn, request)
        invite = invites.invite_create(actor=actor(request), community=community, **data)
        return Response(InviteSerializer(invite).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["invites"])
class InviteDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, code: str) -> Response:
        invites.invite_revoke(actor=actor(request), community=_community(request, slug), code=code)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["invites"])
class InviteAcceptView(APIView):
    @extend_schema(request=None, responses={200: MemberSerializer})
    def post(self, request: Request, code: str) -> Response:
        membership = invites.invite_accept(actor=actor(request), code=code)
        return Response(MemberSerializer(membership).data)


@extend_schema(tags=["moderation"])
class JoinRequestListView(generics.ListAPIView):
    serializer_class = JoinRequestSerializer

    def get_queryset(self):
        community = _community(self.request, self.kwargs["slug"], Role.ADMIN)
        return selectors.join_requests_list(community=community)


@extend_schema(tags=["moderation"])
class JoinRequestApproveView(APIView):
    @extend_schema(request=None, responses={200: MemberSerializer})
    def post(self, request: Request, slug: str, request_id: int) -> Response:
        membership = moderation.join_request_approve(
            actor=actor(request), community=_community(request, slug), request_id=request_id
        )
        return Response(MemberSerializer(membership).data)


@extend_schema(tags=["moderation"])
class JoinRequestDenyView(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, slug: str, request_id: int) -> Response:
        moderation.join_request_deny(
            actor=actor(request), community=_community(request, slug), request_id=request_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["moderation"])
class AuditLogView(generics.ListAPIView):
    serializer_class = AuditEntrySerializer

    def get_queryset(self):
        community = _community(self.request, self.kwargs["slug"], Role.ADMIN)
        return selectors.audit_list(community=community)
