"""Reads of the chat app, each limited to what the caller can read: a message, a room's history,
unread counts, search, and the report queue for moderators. Something missing and something the
caller may not see raise the same NotFound; the queue of a community the caller sees but does
not moderate is Forbidden (docs/api.md, Visibility and permissions)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from chat.models import Message, Reaction, ReadMarker, Report, ThreadFollow
from chat.services.reactions import clean_emoji_lookup
from communities.models import Community, Room
from communities.roles import Role
from communities.selectors import (
    readable_rooms_filter,
    readable_rooms_sql,
    room_can_read,
    rooms_readable,
)
from communities.services.access import require_role
from sphere.errors import ApplicationError, NotFound

DEFAULT_LIMIT, MAX_LIMIT = 50, 200


def message_get_for_reader(*, actor: User, message_id: int) -> Message:
    """The message if ``actor`` can read its room; NotFound alike for missing and unreadable."""
    message = (
        Message.objects.select_related("room", "room__community", "author")
        .filter(pk=message_id)
        .first()
    )
    if message is None or not room_can_read(user=actor, room=message.room):
        raise NotFound("No such message.")
    return message


def thread_root_for_reader(*, actor: User, message_id: int) -> Message:
    """A top-level message the caller can read, whose thread is asked for; NotFound alike for
    a missing or unreadable message and for a reply (a reply has no thread of its own)."""
    message = message_get_for_reader(actor=actor, message_id=message_id)
    if message.thread_root_id is not None:
        raise NotFound("No such thread.")
    return message


def thread_replies(
    *, root: Message, after_seq: int | None = None, limit: int = DEFAULT_LIMIT
) -> tuple[list[Message], bool]:
    """A page of the thread's replies in ascending seq (after ``after_seq``, else from the
    first), and whether more follow."""
    limit = max(1, min(limit, MAX_LIMIT))
    qs = (
        Message.objects.filter(thread_root=root)
        .select_related("author")
        .prefetch_related("reactions")
    )
    if after_seq is not None:
        qs = qs.filter(seq__gt=after_seq)
    page = list(qs.order_by("seq")[: limit + 1])
    return page[:limit], len(page) > limit


def my_threads(*, user: User) -> QuerySet[ThreadFollow]:
    """The threads ``user`` follows in rooms they can read, the latest reply first, each with
    ``unread``: replies by others after the user's thread marker (the root excluded). The
    counts come from each follow's marker over the replies' (thread, seq) index: no row per
    message per user."""
    readable = Room.objects.filter(readable_rooms_filter(user)).values("pk")
    unread = (
        Message.objects.filter(
            thread_root=OuterRef("root_id"), deleted=False, seq__gt=OuterRef("read_seq")
        )
        .exclude(author=user)
        .order_by()
        .values("thread_root")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        ThreadFollow.objects.filter(user=user, following=True, root__room_id__in=readable)
        .select_related("root__author")
        .prefetch_related("root__reactions")
        .annotate(unread=Coalesce(Subquery(unread[:1], output_field=IntegerField()), Value(0)))
        .order_by(F("root__thread_last_reply_at").desc(nulls_last=True), "-root_id")
    )


def reactions_with_emoji(*, message: Message, emoji: str) -> QuerySet[Reaction]:
    """The reactions with ``emoji`` on a message the caller can read (see
    message_get_for_reader), oldest first, with their users. Raises Invalid for a bad emoji."""
    emoji = clean_emoji_lookup(emoji)
    return (
        Reaction.objects.filter(message=message, emoji=emoji)
        .select_related("user")
        .order_by("created_at", "id")
    )


def history(
    *,
    room: Room,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[Message], bool]:
    """A page of the room's top-level messages in ascending seq (thread replies are read with
    their thread: ``thread_replies``), and whether more exist beyond it in the direction asked
    (older without a cursor or with ``before_seq``, newer with ``after_seq``)."""
    limit = max(1, min(limit, MAX_LIMIT))
    qs = (
        Message.objects.filter(room=room, thread_root__isnull=True)
        .select_related("author")
        .prefetch_related("reactions")
    )
    if after_seq is not None:
        page = list(qs.filter(seq__gt=after_seq).order_by("seq")[: limit + 1])
        return page[:limit], len(page) > limit
    if before_seq is not None:
        qs = qs.filter(seq__lt=before_seq)
    page = list(qs.order_by("-seq")[: limit + 1])
    return list(reversed(page[:limit])), len(page) > limit


def unread_subquery(user: User) -> Coalesce:
    """Top-level messages by others after the user's read marker, per room (for
    ``annotate``)."""
    marker = ReadMarker.objects.filter(room=OuterRef(OuterRef("pk")), user=user).values("seq")
    counts = (
        Message.objects.filter(room=OuterRef("pk"), deleted=False, thread_root__isnull=True)
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


def rooms_for_hello(*, user_id: int) -> list[tuple[Room, int]]:
    """What ``rooms_with_unread`` answers, for a connection's ``hello``, as (room, unread)
    pairs in ``rooms_readable``'s order; each room's community carries its slug alone (a DM's
    is None).

    One statement written by hand, its rows made into rooms without the ORM's query machinery:
    every connection that opens reads it, and the ORM spends several times the database's
    own time building the same query and its rooms."""
    readable, params = readable_rooms_sql(user_id)
    room, community, message, marker = (
        connection.ops.quote_name(model._meta.db_table)
        for model in (Room, Community, Message, ReadMarker)
    )
    fields = Room._meta.concrete_fields
    columns = ", ".join(f"r.{connection.ops.quote_name(field.column)}" for field in fields)
    sql = (
        # Table and column names from the models, every value a parameter.
        f"SELECT {columns}, c.slug, (SELECT COUNT(*) FROM {message} m"  # noqa: S608
        " WHERE m.room_id = r.id AND NOT m.deleted AND m.thread_root_id IS NULL"
        " AND m.author_id <> %s"
        " AND m.seq > COALESCE(k.seq, 0))"
        f" FROM {room} r LEFT JOIN {community} c ON c.id = r.community_id"
        f" LEFT JOIN {marker} k ON k.room_id = r.id AND k.user_id = %s"
        f" WHERE r.id IN ({readable}) ORDER BY c.slug IS NULL, c.slug, r.name, r.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id, user_id, *params])
        rows = cursor.fetchall()
    # The backend's conversions of each column (SQLite's dates and booleans), as the ORM
    # applies them.
    converting = []
    for index, field in enumerate(fields):
        col = field.get_col("r")
        found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if found:
            converting.append((index, col, found))
    names = [field.attname for field in fields]
    slug_at = len(fields)
    communities: dict[int, Community] = {}
    rooms: list[tuple[Room, int]] = []
    for row in rows:
        values = list(row[:slug_at])
        for index, col, converters in converting:
            for convert in converters:
                values[index] = convert(values[index], col, connection)
        each = Room.from_db(connection.alias, names, values)
        if each.community_id is None:  # a DM
            each.community = None
        else:
            if each.community_id not in communities:
                communities[each.community_id] = Community(pk=each.community_id, slug=row[slug_at])
            each.community = communities[each.community_id]
        rooms.append((each, int(row[slug_at + 1])))
    return rooms


def unread_for_room(room_id: int, user_ids: list[int]) -> dict[int, int]:
    """Each user's unread count in one room (top-level messages), in one query."""
    marker = ReadMarker.objects.filter(room_id=room_id, user=OuterRef("pk")).values("seq")
    counts = (
        Message.objects.filter(room_id=room_id, deleted=False, thread_root__isnull=True)
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
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery, SearchVector

        qs = qs.annotate(document=SearchVector("body", config="simple")).filter(
            document=SearchQuery(q, config="simple", search_type="websearch")
        )
    else:
        for word in q.split()[:10]:
            qs = qs.filter(Q(body__icontains=word))
    return qs.select_related("author").prefetch_related("reactions").order_by("-created_at", "-pk")


def _readable(actor: User, community: Community) -> QuerySet[Room]:
    return Room.objects.filter(readable_rooms_filter(actor), community=community)


def reports_for_moderator(
    *, actor: User, community: Community, status: str | None = None
) -> QuerySet[Report]:
    """Reports on messages of the community's rooms that the moderator can read, newest first.
    Raises NotFound/Forbidden as ``require_role`` does."""
    require_role(actor=actor, community=community, minimum=Role.MODERATOR)
    rooms = _readable(actor, community).values("pk")
    qs = Report.objects.filter(message__room_id__in=rooms)
    if status:
        qs = qs.filter(status=status)
    return (
        qs.select_related("message__author", "message__room", "reporter")
        .prefetch_related("message__reactions")
        .order_by("-created_at", "-id")
    )


def report_get_for_moderator(*, actor: User, report_id: int) -> Report:
    """The report if the caller moderates its community and reads its room; NotFound alike
    for a missing report and one the caller may not see."""
    report = (
        Report.objects.select_related("message__room__community", "message__author", "reporter")
        .filter(pk=report_id)
        .first()
    )
    if report is None:
        raise NotFound("No such report.")
    community = report.message.room.community
    if community is None:  # a DM's reports reach site staff in the admin alone (docs/dms.md)
        raise NotFound("No such report.")
    try:
        require_role(actor=actor, community=community, minimum=Role.MODERATOR)
    except ApplicationError as exc:
        raise NotFound("No such report.") from exc
    if not _readable(actor, community).filter(pk=report.message.room_id).exists():
        raise NotFound("No such report.")
    return report
