"""Reads of the chat app, each limited to what the caller can read."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from chat.models import Message, ReadMarker
from communities.models import Room
from communities.selectors import readable_rooms_filter, rooms_readable

DEFAULT_LIMIT, MAX_LIMIT = 50, 200


def history(
    *,
    room: Room,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[Message], bool]:
    """A page of the room's messages in ascending seq, and whether more exist beyond it in
    the direction asked (older without a cursor or with ``before_seq``, newer with
    ``after_seq``)."""
    limit = max(1, min(limit, MAX_LIMIT))
    qs = Message.objects.filter(room=room).select_related("author").prefetch_related("reactions")
    if after_seq is not None:
        page = list(qs.filter(seq__gt=after_seq).order_by("seq")[: limit + 1])
        return page[:limit], len(page) > limit
    if before_seq is not None:
        qs = qs.filter(seq__lt=before_seq)
    page = list(qs.order_by("-seq")[: limit + 1])
    return list(reversed(page[:limit])), len(page) > limit


def unread_subquery(user: User) -> Coalesce:
    """Messages by others after the user's read marker, per room (for ``annotate``)."""
    marker = ReadMarker.objects.filter(room=OuterRef(OuterRef("pk")), user=user).values("seq")
    counts = (
        Message.objects.filter(room=OuterRef("pk"), deleted=False)
        .exclude(author=user)
        .filter(seq__gt=Coalesce(Subquery(marker[:1]), Value(0)))
        .order_by()
        .values("room")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts[:1], output_field=IntegerField()), Value(0))


def rooms_with_unread(*, user: User) -> QuerySet[Room]:
    return rooms_readable(user=user).annotate(unread=unread_subquery(user))


def unread_for_room(room_id: int, user_ids: list[int]) -> dict[int, int]:
    """Each user's unread count in one room, in one query."""
    marker = ReadMarker.objects.filter(room_id=room_id, user=OuterRef("pk")).values("seq")
    counts = (
        Message.objects.filter(room_id=room_id, deleted=False)
        .exclude(author=OuterRef("pk"))
        .filter(seq__gt=Coalesce(Subquery(marker[:1]), Value(0)))
        .order_by()
        .values("room")
        .annotate(n=Count("pk"))
        .values("n")
    )
    rows = User.objects.filter(pk__in=user_ids).annotate(
        unread=Coalesce(Subquery(counts[:1], output_field=IntegerField()), Value(0))
    )
    return dict(rows.values_list("pk", "unread"))


def search(
    *, user: User, q: str, community_slug: str | None = None, room_id: int | None = None
) -> QuerySet[Message]:
    """Messages the caller can read that match ``q`` (full-text on PostgreSQL, a substring
    match elsewhere), newest first."""
    readable = Room.objects.filter(readable_rooms_filter(user)).values("pk")
    qs = Message.objects.filter(room_id__in=readable, deleted=False)
    if community_slug:
        qs = qs.filter(room__community__slug=community_slug)
    if room_id is not None:
        qs = qs.filter(room_id=room_id)
    from django.db import connection

    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery, SearchVector

        qs = qs.annotate(document=SearchVector("body", config="simple")).filter(
            document=SearchQuery(q, config="simple", search_type="websearch")
        )
    else:
        for word in q.split()[:10]:
            qs = qs.filter(Q(body__icontains=word))
    return qs.select_related("author").prefetch_related("reactions").order_by("-created_at", "-pk")
