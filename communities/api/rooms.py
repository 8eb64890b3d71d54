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
from communities.services import rooms as room_services


@extend_schema(tags=["rooms"])
class CommunityRoomListView(generics.ListAPIView):
    serializer_class = RoomSerializer

    def get_queryset(self):
        community = selectors.community_get_for_role(
            user=self.request.user, slug=self.kwargs["slug"], minimum=Role.MEMBER
        )
        return selectors.rooms_readable(
            user=self.request.user, community=community, with_unread=True
        )

    @extend_schema(request=RoomCreateIn, responses={201: RoomSerializer})
    def post(self, request: Request, slug: str) -> Response:
        community = selectors.community_get_for_role(
            user=request.user, slug=slug, minimum=Role.ADMIN
        )
        data = parse(RoomCreateIn, request)
        room = room_services.room_create(actor=actor(request), community=community, **data)
        return Response(RoomSerializer(room).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["rooms"])
class RoomDetailView(APIView):
    @extend_schema(responses={200: RoomSerializer})
    def get(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_reader(user=request.user, room_id=room_id, with_unread=True)
        return Response(RoomSerializer(room).data)

    @extend_schema(request=RoomUpdateIn, responses={200: RoomSerializer})
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

    @extend_schema(responses={204: None})
    def delete(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_reader(user=request.user, room_id=room_id)
        room_services.room_delete(actor=actor(request), room=room)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["rooms"])
class RoomMemberListView(generics.ListAPIView):
    serializer_class = MemberSerializer

    def get_queryset(self):
        room = selectors.room_get_for_reader(user=self.request.user, room_id=self.kwargs["room_id"])
        return selectors.room_members_list(room=room)

    @extend_schema(request=UserIdIn, responses={201: MemberSerializer})
    def post(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_role(user=request.user, room_id=room_id, minimum=Role.ADMIN)
        data = parse(UserIdIn, request)
        membership = room_services.room_member_add(
            actor=actor(request), room=room, user_id=data["user_id"]
        )
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["rooms"])
class RoomMemberDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, room_id: int, user_id: int) -> Response:
        room = selectors.room_get_for_reader(user=request.user, room_id=room_id)
        room_services.room_member_remove(actor=actor(request), room=room, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
