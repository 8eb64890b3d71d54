"""Messages, reactions, reports, read markers, search and presence (docs/api.md).

Views parse, call one selector or service, and render; every rule lives in the services. A room
or message the caller cannot read answers 404 exactly like a missing one.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors
from chat.api.serializers import (
    HistoryQuery,
    HistorySerializer,
    MessageCreateIn,
    MessageEditIn,
    MessageSerializer,
    PresenceSerializer,
    ReadIn,
    ReadStateSerializer,
    ReportIn,
    ReportSerializer,
    SearchQuery,
)
from chat.models import Message
from chat.presence import online_in_room
from chat.services import messages, reactions, read_markers, reports
from communities.api.base import actor, parse
from communities.api.serializers import RoomSerializer, UserSerializer
from communities.models import Room
from communities.selectors import room_get_for_reader
from sphere.schema import errors


def parse_query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The query string validated by ``serializer_class``; 400 ``invalid`` otherwise.

    An empty value (``?after_seq=``) counts as absent, so that a client filling a URL template
    ``?after_seq=&before_seq=&limit=`` with blanks gets the defaults.
    """
    data = {key: value for key, value in request.query_params.items() if value != ""}
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _message_body(message: Message, request: Request) -> dict[str, Any]:
    return MessageSerializer(message, context={"viewer_id": actor(request).pk}).data


def _message(request: Request, message_id: int) -> Message:
    return selectors.message_get_for_reader(actor=actor(request), message_id=message_id)


def _room(request: Request, room_id: int) -> Room:
    return room_get_for_reader(user=request.user, room_id=room_id)


_CURSOR_HELP = "Give at most one of `after_seq` and `before_seq` (both: 400)."


@extend_schema(tags=["messages"])
class RoomMessagesView(APIView):
    @extend_schema(
        summary="Message history",
        description="Ascending seq always. No cursor: the newest `limit` messages; "
        "`before_seq`: the `limit` messages just before it; `after_seq`: the `limit` messages "
        "just after it. " + _CURSOR_HELP,
        parameters=[HistoryQuery],
        responses={200: HistorySerializer},
    )
    def get(self, request: Request, room_id: int) -> Response:
        room = _room(request, room_id)
        query = parse_query(HistoryQuery, request)
        page, has_more = selectors.history(
            room=room,
            after_seq=query.get("after_seq"),
            before_seq=query.get("before_seq"),
            limit=query.get("limit", selectors.DEFAULT_LIMIT),
        )
        context = {"viewer_id": actor(request).pk}
        results = MessageSerializer(page, many=True, context=context).data
        return Response({"results": results, "has_more": has_more})

    @extend_schema(
        summary="Post a message",
        description="201 and the new message; the same `client_msg_id` again (same author and "
        "room) answers 200 and the original message, whatever the body, mute, slow mode or "
        "rate limit says now.",
        request=MessageCreateIn,
        responses={
            201: MessageSerializer,
            200: OpenApiResponse(MessageSerializer, description="A repeated client_msg_id."),
            **errors(
                {
                    400: "Invalid input (`invalid`, with `fields`), or a body holding a term "
                    "the community blocks (`blocked_content`).",
                    403: "The caller is muted (`muted`).",
                    429: "Over the per-user message rate (`rate_limited`) or the room's slow "
                    "mode (`slow_mode`), with `retry_after` and `Retry-After` in seconds.",
                }
            ),
        },
    )
    def post(self, request: Request, room_id: int) -> Response:
        room = _room(request, room_id)
        data = parse(MessageCreateIn, request)
        message, created = messages.message_post(
            actor=actor(request),
            room=room,
            body=data["body"],
            client_msg_id=data["client_msg_id"],
            reply_to=data.get("reply_to"),
            thread_root=data.get("thread_root"),
        )
        answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(_message_body(message, request), status=answer)


@extend_schema(tags=["messages"])
class MessageDetailView(APIView):
    @extend_schema(
        summary="A message",
        description="The message, for a reader of its room; 404 otherwise, as for a missing one.",
        responses={200: MessageSerializer},
    )
    def get(self, request: Request, message_id: int) -> Response:
        return Response(_message_body(_message(request, message_id), request))

    @extend_schema(
        summary="Edit a message (author)",
        description="Only the author, and not while muted; the room's readers get "
        "`message.edited`. A deleted message is 409.",
        request=MessageEditIn,
        responses={
            200: MessageSerializer,
            **errors(
                {
                    403: "Not the author (`forbidden`), or muted (`muted`).",
                    409: "The message was deleted (`conflict`).",
                }
            ),
        },
    )
    def patch(self, request: Request, message_id: int) -> Response:
        message = messages.message_edit(
            actor=actor(request),
            message=_message(request, message_id),
            body=parse(MessageEditIn, request)["body"],
        )
        return Response(_message_body(message, request))

    @extend_schema(
        summary="Delete a message (author, or a moderator and up by rank)",
        description="The message keeps its id and seq, with an empty body and `deleted: true`; "
        "the room's readers get `message.deleted`.",
        responses={
            204: None,
            **errors({403: "Neither the author nor above them (`forbidden`)."}),
        },
    )
    def delete(self, request: Request, message_id: int) -> Response:
        messages.message_delete(actor=actor(request), message=_message(request, message_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(
    tags=["messages"],
    parameters=[
        OpenApiParameter(
            "emoji",
            OpenApiTypes.STR,
            OpenApiParameter.PATH,
            description="One Unicode emoji, URL-encoded (docs/api.md, Reactions).",
        )
    ],
)
class ReactionView(generics.GenericAPIView):
    serializer_class = UserSerializer

    @extend_schema(
        summary="Who reacted with this emoji",
        description="The users who reacted to the message with this emoji, earliest first, "
        "paged like every list. For a reader of the message's room; 404 otherwise.",
        responses={200: UserSerializer(many=True)},
    )
    def get(self, request: Request, message_id: int, emoji: str) -> Response:
        message = _message(request, message_id)
        page = self.paginate_queryset(selectors.reactions_with_emoji(message=message, emoji=emoji))
        users = [reaction.user for reaction in page or []]
        return self.get_paginated_response(UserSerializer(users, many=True).data)

    @extend_schema(
        summary="Add the caller's reaction",
        description="Adding it again changes nothing. Answers the message with its reactions; "
        "the room's readers get `reaction.added`.",
        request=None,
        responses={
            200: MessageSerializer,
            **errors(
                {
                    400: "Not an emoji (`invalid`, naming `emoji`).",
                    403: "The caller is muted (`muted`).",
                    409: "The message was deleted (`conflict`).",
                }
            ),
        },
    )
    def put(self, request: Request, message_id: int, emoji: str) -> Response:
        message = reactions.reaction_add(
            actor=actor(request), message=_message(request, message_id), emoji=emoji
        )
        return Response(_message_body(message, request))

    @extend_schema(
        summary="Remove the caller's reaction",
        description="The room's readers get `reaction.removed`; no such reaction is 404.",
        responses={204: None, **errors({400: "Not an emoji (`invalid`, naming `emoji`)."})},
    )
    def delete(self, request: Request, message_id: int, emoji: str) -> Response:
        reactions.reaction_remove(
            actor=actor(request), message=_message(request, message_id), emoji=emoji
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["messages"])
class ReportView(APIView):
    @extend_schema(
        summary="Report a message to the moderators",
        description="Any reader of the message's room; one open report per reporter and "
        "message (409 for a second, and for a deleted message).",
        request=ReportIn,
        responses={
            201: ReportSerializer,
            **errors({409: "Reported already, or deleted (`conflict`)."}),
        },
    )
    def post(self, request: Request, message_id: int) -> Response:
        message = _message(request, message_id)
        report = reports.report_create(
            actor=actor(request), message=message, reason=parse(ReportIn, request)["reason"]
        )
        body = ReportSerializer(report, context={"viewer_id": actor(request).pk}).data
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(tags=["messages"])
class ReadView(APIView):
    @extend_schema(
        summary="Move the caller's read marker forward",
        description="A marker never moves back: the answer is the marker as it now stands; "
        "the caller's connections get `read`.",
        request=ReadIn,
        responses={200: ReadStateSerializer},
    )
    def post(self, request: Request, room_id: int) -> Response:
        room = _room(request, room_id)
        seq = parse(ReadIn, request)["seq"]
        marker = read_markers.read_marker_move(actor=actor(request), room=room, seq=seq)
        return Response({"room": room.pk, "seq": marker.seq})


@extend_schema(tags=["rooms"])
class PresenceView(APIView):
    @extend_schema(
        summary="Who of the room's readers is online",
        description="The ids of the room's readers with at least one open connection.",
        responses={200: PresenceSerializer},
    )
    def get(self, request: Request, room_id: int) -> Response:
        room = _room(request, room_id)
        return Response({"online": online_in_room(room_id=room.pk)})


@extend_schema(tags=["messages"])
class SearchView(generics.ListAPIView):
    serializer_class = MessageSerializer

    @extend_schema(
        summary="Search the messages the caller can read",
        description="Newest first. Words are matched whole on PostgreSQL (full-text, `simple` "
        "configuration, web-search syntax), as substrings elsewhere. An unknown or unreadable "
        "`community` or `room` gives no results.",
        parameters=[SearchQuery],
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Message]:
        query = parse_query(SearchQuery, self.request)
        return selectors.search(
            user=actor(self.request),
            q=query["q"],
            community_slug=query.get("community"),
            room_id=query.get("room"),
        )


@extend_schema(
    tags=["rooms"],
    summary="The rooms the caller can read, with unread counts",
    description="Every room of every community the caller belongs to that they can read.",
)
class MyRoomsView(generics.ListAPIView):
    serializer_class = RoomSerializer

    def get_queryset(self) -> QuerySet[Room]:
        return selectors.rooms_with_unread(user=actor(self.request))
