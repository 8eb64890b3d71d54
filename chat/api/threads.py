"""Threads: a root's replies, following, the thread marker, the caller's threads
(docs/threads.md). Replies are posted as messages with ``thread_root``."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors
from chat.api.serializers import (
    MessageSerializer,
    MyThreadSerializer,
    ReadIn,
    ThreadQuery,
    ThreadSerializer,
    ThreadStateSerializer,
)
from chat.api.views import parse_query
from chat.models import Message, ThreadFollow
from chat.services import threads
from communities.api.base import actor, parse
from sphere.schema import errors

_NOT_A_ROOT: dict[int, str | None] = {
    404: "Missing, unreadable, or a reply (a reply has no thread) (`not_found`)."
}


def _root(request: Request, message_id: int) -> Message:
    return selectors.thread_root_for_reader(actor=actor(request), message_id=message_id)


def _state(state: ThreadFollow) -> dict[str, Any]:
    return {
        "message_id": state.root_id,
        "following": bool(state.following),
        "read_seq": state.read_seq,
    }


@extend_schema(tags=["threads"])
class ThreadView(APIView):
    @extend_schema(
        summary="A thread",
        description="The root and a page of its replies in seq order: from the first, or "
        "after `after_seq`. A deleted root still shows its thread (the root as deleted).",
        parameters=[ThreadQuery],
        responses={200: ThreadSerializer, **errors(_NOT_A_ROOT)},
    )
    def get(self, request: Request, message_id: int) -> Response:
        root = _root(request, message_id)
        query = parse_query(ThreadQuery, request)
        page, has_more = selectors.thread_replies(
            root=root,
            after_seq=query.get("after_seq"),
            limit=query.get("limit", selectors.DEFAULT_LIMIT),
        )
        context = {"viewer_id": actor(request).pk}
        return Response(
            {
                "root": MessageSerializer(root, context=context).data,
                "results": MessageSerializer(page, many=True, context=context).data,
                "has_more": has_more,
            }
        )


@extend_schema(tags=["threads"])
class FollowView(APIView):
    @extend_schema(
        summary="Follow a thread",
        description="Following again changes nothing. Writing the root, replying, or being "
        "mentioned in a reply follows a thread automatically.",
        request=None,
        responses={200: ThreadStateSerializer, **errors(_NOT_A_ROOT)},
    )
    def put(self, request: Request, message_id: int) -> Response:
        state = threads.thread_follow(actor=actor(request), root=_root(request, message_id))
        return Response(_state(state))

    @extend_schema(
        summary="Unfollow a thread",
        description="The choice stays: a mention in the thread does not bring it back; "
        "replying in it does.",
        responses={204: None, **errors(_NOT_A_ROOT)},
    )
    def delete(self, request: Request, message_id: int) -> Response:
        threads.thread_unfollow(actor=actor(request), root=_root(request, message_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["threads"])
class ThreadReadView(APIView):
    @extend_schema(
        summary="Move the caller's thread marker forward",
        description="Never back; the answer is the marker as it now stands.",
        request=ReadIn,
        responses={200: ThreadStateSerializer, **errors(_NOT_A_ROOT)},
    )
    def post(self, request: Request, message_id: int) -> Response:
        root = _root(request, message_id)
        seq = parse(ReadIn, request)["seq"]
        return Response(_state(threads.thread_read(actor=actor(request), root=root, seq=seq)))


@extend_schema(tags=["threads"])
class MyThreadsView(generics.ListAPIView):
    serializer_class = MyThreadSerializer

    @extend_schema(
        summary="The threads the caller follows",
        description="In rooms the caller can read, the latest reply first, each with its "
        "unread replies.",
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[ThreadFollow]:
        return selectors.my_threads(user=actor(self.request))

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "viewer_id": self.request.user.pk}
