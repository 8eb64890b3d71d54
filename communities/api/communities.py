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
    InviteAcceptSerializer,
    InviteIn,
    InvitePreviewSerializer,
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
from sphere.schema import errors


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
        summary="List communities",
        description="The public communities and the caller's own, by name; `mine` keeps only "
        "the caller's own, `q` those whose name, slug or description contains it.",
        parameters=[
            OpenApiParameter("q", str, description="Text to look for in name, slug, description"),
            OpenApiParameter("mine", OpenApiTypes.BOOL, description="Only the caller's own"),
        ],
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Community]:
        params = self.request.query_params
        mine = params.get("mine", "").lower() in {"1", "true", "yes"}
        return selectors.communities_list(
            user=self.request.user, q=params.get("q", "")[:100], mine=mine
        )

    @extend_schema(
        summary="Create a community",
        description="The caller becomes its owner. Without `slug`, a free one is derived from "
        "the name; a taken `slug` is 409. The community starts with one room, `general`.",
        request=CommunityCreateIn,
        responses={201: CommunitySerializer, **errors({409: "The slug is taken (`conflict`)."})},
    )
    def post(self, request: Request) -> Response:
        data = parse(CommunityCreateIn, request)
        community = community_services.community_create(actor=actor(request), **data)
        body = CommunitySerializer(_community(request, community.slug)).data
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(tags=["communities"])
class CommunityDetailView(APIView):
    @extend_schema(
        summary="A community",
        description="A public community to anyone signed in; a private one to its members "
        "(404 to anyone else).",
        responses={200: CommunitySerializer},
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(CommunitySerializer(_community(request, slug)).data)

    @extend_schema(
        summary="Change a community (admins)",
        description="Name, description and visibility; the slug never changes.",
        request=CommunityUpdateIn,
        responses={200: CommunitySerializer, **errors({403: "Below admin (`forbidden`)."})},
    )
    def patch(self, request: Request, slug: str) -> Response:
        community = _community(request, slug, Role.ADMIN)
        data = parse(CommunityUpdateIn, request)
        community_services.community_update(actor=actor(request), community=community, changes=data)
        return Response(CommunitySerializer(_community(request, slug)).data)

    @extend_schema(
        summary="Delete a community (owner)",
        description="With its rooms, messages and memberships; live connections lose its rooms.",
        responses={204: None, **errors({403: "Not the owner (`forbidden`)."})},
    )
    def delete(self, request: Request, slug: str) -> Response:
        community_services.community_delete(
            actor=actor(request), community=_community(request, slug)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["communities"])
class JoinView(APIView):
    @extend_schema(
        summary="Join a community",
        description="A public community: 200 and the caller's membership (a member gets it "
        "back). A private one: 202 and a join request for its admins. Banned: 403.",
        request=None,
        responses={
            200: MemberSerializer,
            202: JoinRequestSerializer,
            **errors({403: "The caller is banned (`banned`)."}),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        community = selectors.community_get_for_join(slug=slug)
        result = members.community_join(actor=actor(request), community=community)
        if isinstance(result, JoinRequest):
            return Response(JoinRequestSerializer(result).data, status=status.HTTP_202_ACCEPTED)
        return Response(_member_body(result))


@extend_schema(tags=["communities"])
class LeaveView(APIView):
    @extend_schema(
        summary="Leave a community",
        description="The owner cannot leave (409): transfer ownership first.",
        request=None,
        responses={
            204: None,
            **errors({403: "Not a member (`forbidden`).", 409: "The owner (`conflict`)."}),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        members.community_leave(actor=actor(request), community=_community(request, slug))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(
    tags=["members"],
    summary="List a community's members",
    description="With their roles and mutes; for members.",
    responses={200: MemberSerializer(many=True), **errors({403: "Not a member (`forbidden`)."})},
)
class MemberListView(generics.ListAPIView):
    serializer_class = MemberSerializer

    def get_queryset(self) -> QuerySet[Membership]:
        community = _community(self.request, self.kwargs["slug"], Role.MEMBER)
        return selectors.members_list(community=community)


@extend_schema(tags=["members"])
class MemberDetailView(APIView):
    @extend_schema(
        summary="Set a member's role",
        description="Admins grant `moderator` and `member`, the owner also `admin`; granting "
        "`owner` transfers ownership (the old owner becomes admin). Only on users of a lower "
        "rank.",
        request=RoleIn,
        responses={
            200: MemberSerializer,
            **errors({403: "Below admin, or not above the member (`forbidden`)."}),
        },
    )
    def patch(self, request: Request, slug: str, user_id: int) -> Response:
        community = _community(request, slug, Role.ADMIN)  # the least that grants (can_grant)
        data = parse(RoleIn, request)
        membership = members.member_set_role(
            actor=actor(request), community=community, user_id=user_id, role=data["role"]
        )
        return Response(_member_body(membership))

    @extend_schema(
        summary="Kick a member (moderators)",
        description="The member leaves the community and its rooms; they may join again.",
        responses={
            204: None,
            **errors({403: "Below moderator, or not above the member (`forbidden`)."}),
        },
    )
    def delete(self, request: Request, slug: str, user_id: int) -> Response:
        members.member_kick(
            actor=actor(request), community=_community(request, slug), user_id=user_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["members"])
class MuteView(APIView):
    @extend_schema(
        summary="Mute a member (moderators)",
        description="For `minutes` (up to 28 days): the member can read but not post, edit "
        "or react.",
        request=MuteIn,
        responses={
            200: MemberSerializer,
            **errors({403: "Below moderator, or not above the member (`forbidden`)."}),
        },
    )
    def post(self, request: Request, slug: str, user_id: int) -> Response:
        community = _community(request, slug, Role.MODERATOR)
        data = parse(MuteIn, request)
        membership = members.member_mute(
            actor=actor(request), community=community, user_id=user_id, minutes=data["minutes"]
        )
        return Response(_member_body(membership))

    @extend_schema(
        summary="Unmute a member (moderators)",
        description="Ends the member's mute at once.",
        responses={
            204: None,
            **errors({403: "Below moderator, or not above the member (`forbidden`)."}),
        },
    )
    def delete(self, request: Request, slug: str, user_id: int) -> Response:
        members.member_unmute(
            actor=actor(request), community=_community(request, slug), user_id=user_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["moderation"])
class BanListView(generics.ListAPIView):
    serializer_class = BanSerializer

    @extend_schema(
        summary="List a community's bans (moderators)",
        description="Newest first, with who banned and why.",
        responses={
            200: BanSerializer(many=True),
            **errors({403: "Below moderator (`forbidden`)."}),
        },
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        community = _community(self.request, self.kwargs["slug"], Role.MODERATOR)
        return selectors.bans_list(community=community)

    @extend_schema(
        summary="Ban a user (moderators)",
        description="The user leaves the community if a member, and cannot join again until "
        "the ban is lifted. An unknown `user_id` is 400; a second ban 409.",
        request=BanIn,
        responses={
            201: BanSerializer,
            **errors(
                {
                    403: "Below moderator, or not above the user (`forbidden`).",
                    409: "Already banned (`conflict`).",
                }
            ),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        community = _community(request, slug, Role.MODERATOR)
        data = parse(BanIn, request)
        ban = moderation.ban_create(actor=actor(request), community=community, **data)
        return Response(BanSerializer(ban).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["moderation"])
class BanDetailView(APIView):
    @extend_schema(
        summary="Lift a ban (moderators)",
        description="The user may join again.",
        responses={204: None, **errors({403: "Below moderator (`forbidden`)."})},
    )
    def delete(self, request: Request, slug: str, user_id: int) -> Response:
        moderation.ban_lift(
            actor=actor(request), community=_community(request, slug), user_id=user_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["invites"])
class InviteListView(generics.ListAPIView):
    serializer_class = InviteSerializer

    @extend_schema(
        summary="List a community's invites (admins)",
        description="Newest first, revoked and expired ones included.",
        responses={200: InviteSerializer(many=True), **errors({403: "Below admin (`forbidden`)."})},
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        community = _community(self.request, self.kwargs["slug"], Role.ADMIN)
        return selectors.invites_list(community=community)

    @extend_schema(
        summary="Create an invite (admins)",
        description="A code to join the community by, private ones included; optionally "
        "limited in uses (`max_uses`) and time (`expires_in_s`).",
        request=InviteIn,
        responses={201: InviteSerializer, **errors({403: "Below admin (`forbidden`)."})},
    )
    def post(self, request: Request, slug: str) -> Response:
        community = _community(request, slug, Role.ADMIN)
        data = parse(InviteIn, request)
        invite = invites.invite_create(actor=actor(request), community=community, **data)
        return Response(InviteSerializer(invite).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["invites"])
class InviteDetailView(APIView):
    @extend_schema(
        summary="Revoke an invite (admins)",
        description="Accepting it answers 410 from then on.",
        responses={204: None, **errors({403: "Below admin (`forbidden`)."})},
    )
    def delete(self, request: Request, slug: str, code: str) -> Response:
        invites.invite_revoke(actor=actor(request), community=_community(request, slug), code=code)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["invites"])
class InvitePreviewView(APIView):
    """An invite as its holder sees it before accepting it."""

    @extend_schema(
        summary="Preview an invite before accepting it",
        description="Any signed-in user holding the code sees the community, private ones "
        "included: the code is the secret. An unknown code is 404. `valid` is false when the "
        "code was revoked, has expired or is used up, or the caller is banned; `reason` says "
        "which. A member's accept answers 200 whatever `valid` says.",
        responses={200: InvitePreviewSerializer},
    )
    def get(self, request: Request, code: str) -> Response:
        preview = selectors.invite_preview(user=request.user, code=code)
        return Response(InvitePreviewSerializer(preview).data)


@extend_schema(tags=["invites"])
class InviteAcceptView(APIView):
    @extend_schema(
        summary="Join a community through an invite",
        description="200 and the caller's Member, with `community` (the slug). A member gets "
        "their membership back and no use is counted. Revoked, expired or used up: 410; "
        "banned: 403.",
        request=None,
        responses={
            200: InviteAcceptSerializer,
            **errors(
                {
                    403: "The caller is banned (`banned`).",
                    410: "Revoked, expired or used up (`gone`).",
                }
            ),
        },
    )
    def post(self, request: Request, code: str) -> Response:
        membership = invites.invite_accept(actor=actor(request), code=code)
        return Response(InviteAcceptSerializer(membership).data)


@extend_schema(tags=["moderation"])
class JoinRequestListView(generics.ListAPIView):
    serializer_class = JoinRequestSerializer

    @extend_schema(
        summary="List pending join requests (admins)",
        description="The requests to join a private community that await an answer.",
        responses={
            200: JoinRequestSerializer(many=True),
            **errors({403: "Below admin (`forbidden`)."}),
        },
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        community = _community(self.request, self.kwargs["slug"], Role.ADMIN)
        return selectors.join_requests_list(community=community)


@extend_schema(tags=["moderation"])
class JoinRequestApproveView(APIView):
    @extend_schema(
        summary="Approve a join request (admins)",
        description="The requester becomes a member; a requester banned since is 409.",
        request=None,
        responses={
            200: MemberSerializer,
            **errors(
                {403: "Below admin (`forbidden`).", 409: "The requester is banned (`conflict`)."}
            ),
        },
    )
    def post(self, request: Request, slug: str, request_id: int) -> Response:
        membership = moderation.join_request_approve(
            actor=actor(request), community=_community(request, slug), request_id=request_id
        )
        return Response(MemberSerializer(membership).data)


@extend_schema(tags=["moderation"])
class JoinRequestDenyView(APIView):
    @extend_schema(
        summary="Deny a join request (admins)",
        description="The request is closed; the user may ask again.",
        request=None,
        responses={204: None, **errors({403: "Below admin (`forbidden`)."})},
    )
    def post(self, request: Request, slug: str, request_id: int) -> Response:
        moderation.join_request_deny(
            actor=actor(request), community=_community(request, slug), request_id=request_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["moderation"])
class AuditLogView(generics.ListAPIView):
    serializer_class = AuditEntrySerializer

    @extend_schema(
        summary="The community's audit log (admins)",
        description="Newest first: who did what to whom (docs: Audit log).",
        responses={
            200: AuditEntrySerializer(many=True),
            **errors({403: "Below admin (`forbidden`)."}),
        },
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        community = _community(self.request, self.kwargs["slug"], Role.ADMIN)
        return selectors.audit_list(community=community)
