"""Direct messages: open one, leave a group DM (docs/dms.md). Everything else a DM does goes
through the room endpoints, unchanged."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from communities import selectors
from communities.api.base import actor, parse
from communities.api.serializers import DmCreateIn, RoomSerializer
from communities.services import dms
from sphere.schema import errors


@extend_schema(tags=["direct messages"])
class DmCreateView(APIView):
    @extend_schema(
        summary="Open a direct message",
        description="The DM of the caller and `user_ids` (1 to 9 others; the caller's own id "
        "and repeats are ignored): 201 and a new room, or 200 and the same room when a DM of "
        "exactly this member set exists. Every member's connections get `room.added`. A user "
        "who may not be messaged (their `dm_policy`, a block, a missing or disabled account) "
        "is 403 with one message whatever the reason.",
        request=DmCreateIn,
        responses={
            200: RoomSerializer,
            201: RoomSerializer,
            **errors({403: "A user may not be messaged (`forbidden`)."}),
        },
    )
    def post(self, request: Request) -> Response:
        data = parse(DmCreateIn, request)
        room, created = dms.dm_open(actor=actor(request), user_ids=data["user_ids"])
        room = selectors.room_get_for_reader(user=request.user, room_id=room.pk, with_unread=True)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(RoomSerializer(room).data, status=code)


@extend_schema(tags=["direct messages"])
class RoomLeaveView(APIView):
    @extend_schema(
        summary="Leave a group DM",
        description="The caller's connections get `room.removed` (reason `left`), the other "
        "members `room.updated` without the caller. A two-person DM cannot be left (409); a "
        "community's room is left by leaving the community (409).",
        request=None,
        responses={204: None, **errors({409: "A two-person DM, or a channel (`conflict`)."})},
    )
    def post(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_reader(user=request.user, room_id=room_id)
        dms.dm_leave(actor=actor(request), room=room)
        return Response(status=status.HTTP_204_NO_CONTENT)
