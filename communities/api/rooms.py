"""Rooms and private-room membership (docs/api.md)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from communities import selectors
from communities.api.base import actor, parse
from communities.api.serializers import (
    MemberSerializer,
    RoomCreateIn,
    RoomSerializer,
    RoomUpdateIn,
    UserIdIn,
)
from communities.roles import Role
from communities.services import dms
from communities.services import rooms as room_services
from sphere.schema import errors


@extend_schema(tags=["rooms"])
class CommunityRoomListView(generics.ListAPIView):
    serializer_class = RoomSerializer

    @extend_schema(
        summary="List a community's rooms",
        description="The rooms of the community the caller can read, with unread counts; for "
        "members.",
        responses={200: RoomSerializer(many=True), **errors({403: "Not a member (`forbidden`)."})},
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        community = selectors.community_get_for_role(
            user=self.request.user, slug=self.kwargs["slug"], minimum=Role.MEMBER
        )
        return selectors.rooms_readable(
            user=self.request.user, community=community, with_unread=True
        )

    @extend_schema(
        summary="Create a room (admins)",
        description="A private room is readable by its own members and the community's "
        "owner and admins. A taken name is 409.",
        request=RoomCreateIn,
        responses={
            201: RoomSerializer,
            **errors({403: "Below admin (`forbidden`).", 409: "The name is taken (`conflict`)."}),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        community = selectors.community_get_for_role(
            user=request.user, slug=slug, minimum=Role.ADMIN
        )
        data = parse(RoomCreateIn, request)
        room = room_services.room_create(actor=actor(request), community=community, **data)
        return Response(RoomSerializer(room).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["rooms"])
class RoomDetailView(APIView):
    @extend_schema(
        summary="A room",
        description="With the caller's unread count; 404 to whoever cannot read it.",
        responses={200: RoomSerializer},
    )
    def get(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_reader(user=request.user, room_id=room_id, with_unread=True)
        return Response(RoomSerializer(room).data)

    @extend_schema(
        summary="Change a room",
        description="Moderators may change `slow_mode_s`; name, topic and the rest need an "
        "admin. A taken name is 409.",
        request=RoomUpdateIn,
        responses={
            200: RoomSerializer,
            **errors(
                {
                    403: "Below moderator, or below admin for more than slow mode (`forbidden`).",
                    409: "The name is taken (`conflict`).",
                }
            ),
        },
    )
    def patch(self, request: Request, room_id: int) -> Response:
        # Moderators may change slow mode; below that, refused before the body is looked at.
        room = selectors.room_get_for_role(
            user=request.user, room_id=room_id, minimum=Role.MODERATOR
        )
        data = parse(RoomUpdateIn, request)
        room_services.room_update(actor=actor(request), room=room, changes=data)
        # Read back for the caller's unread; whoever may update a room still reads it after.
        room = selectors.room_get_for_reader(user=request.user, room_id=room_id, with_unread=True)
        return Response(RoomSerializer(room).data)

    @extend_schema(
        summary="Delete a room (admins)",
        description="With its messages; live connections get `room.removed`.",
        responses={204: None, **errors({403: "Below admin (`forbidden`)."})},
    )
    def delete(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_reader(user=request.user, room_id=room_id)
        room_services.room_delete(actor=actor(request), room=room)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["rooms"])
class RoomMemberListView(generics.ListAPIView):
    serializer_class = MemberSerializer

    @extend_schema(
        summary="List a room's members",
        description="The room's readers: every member of the community for a public room; a "
        "private room's own members and the community's owner and admins; a DM's members "
        "(each with the role `member`).",
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        room = selectors.room_get_for_reader(user=self.request.user, room_id=self.kwargs["room_id"])
        if room.community_id is None:
            return selectors.dm_members_as_memberships(room=room)
        return selectors.room_members_list(room=room)

    @extend_schema(
        summary="Add a member to a private room (admins) or a group DM (its members)",
        description="Private room: the user must be a member of the community (400 "
        "otherwise); a public room has no members of its own (409). Group DM (three or more "
        "members): any member adds someone they may message, up to ten members; the newcomer "
        "reads the whole history. A two-person DM stays two (409: open a group DM instead).",
        request=UserIdIn,
        responses={
            201: MemberSerializer,
            **errors(
                {
                    403: "Below admin, or a user who may not be messaged (`forbidden`).",
                    409: "A public room, a two-person or full DM (`conflict`).",
                }
            ),
        },
    )
    def post(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_reader(user=request.user, room_id=room_id)
        if room.community_id is None:
            data = parse(UserIdIn, request)
            _, added = dms.dm_member_add(actor=actor(request), room=room, user_id=data["user_id"])
            member = selectors.dm_members_as_memberships(room=room, user_id=data["user_id"])[0]
            code = status.HTTP_201_CREATED if added else status.HTTP_200_OK
            return Response(MemberSerializer(member).data, status=code)
        room = selectors.room_get_for_role(user=request.user, room_id=room_id, minimum=Role.ADMIN)
        data = parse(UserIdIn, request)
        membership = room_services.room_member_add(
            actor=actor(request), room=room, user_id=data["user_id"]
        )
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["rooms"])
class RoomMemberDetailView(APIView):
    @extend_schema(
        summary="Remove a member from a private room (admins)",
        description="The user's connections get `room.removed`. A public room has no members "
        "of its own (409).",
        responses={
            204: None,
            **errors({403: "Below admin (`forbidden`).", 409: "A public room (`conflict`)."}),
        },
    )
    def delete(self, request: Request, room_id: int, user_id: int) -> Response:
        room = selectors.room_get_for_reader(user=request.user, room_id=room_id)
        room_services.room_member_remove(actor=actor(request), room=room, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
