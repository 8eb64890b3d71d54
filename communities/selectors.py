"""Reads with a permission check. Each raises NotFound alike for missing and for invisible."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import (
    Count,
    F,
    IntegerField,
    Model,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from communities.models import (
    AuditEntry,
    Ban,
    Community,
    Invite,
    JoinRequest,
    Membership,
    Room,
    RoomMember,
)
from communities.roles import Role, at_least
from communities.services.access import is_banned
from sphere.errors import Forbidden, NotFound

AnyUser = AbstractBaseUser | AnonymousUser

_ADMIN_ROLES = (Role.OWNER.value, Role.ADMIN.value)


def _annotated_communities(user: AnyUser) -> QuerySet[Community]:
    qs = Community.objects.annotate(member_count=Count("memberships", distinct=True))
    if user.is_authenticated:
        my_role = Membership.objects.filter(community=OuterRef("pk"), user_id=user.pk)
        qs = qs.annotate(my_role=Subquery(my_role.values("role")[:1]))
    return qs


def communities_list(*, user: AnyUser, q: str = "", mine: bool = False) -> QuerySet[Community]:
    """Public communities and the caller's own (only the caller's own with ``mine``)."""
    own = Q(memberships__user_id=user.pk)
    visible = own if mine else own | Q(visibility=Community.Visibility.PUBLIC)
    ids = Community.objects.filter(visible).values("pk")
    qs = _annotated_communities(user).filter(pk__in=ids)
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(slug__icontains=q) | Q(description__icontains=q))
    return qs.order_by("slug")


def community_get_for_viewer(*, user: AnyUser, slug: str) -> Community:
    """The community if the caller may see it: a member, or anyone if it is public."""
    community = _annotated_communities(user).filter(slug=slug).first()
    if community is None:
        raise NotFound("No such community.")
    if community.visibility == Community.Visibility.PRIVATE and not getattr(
        community, "my_role", None
    ):
        raise NotFound("No such community.")
    return community


def community_get_for_join(*, slug: str) -> Community:
    """Any community by slug: a private one can be asked to join (202) without being seen."""
    community = Community.objects.filter(slug=slug).first()
    if community is None:
        raise NotFound("No such community.")
    return community


def community_get_for_role(*, user: AnyUser, slug: str, minimum: Role) -> Community:
    """The community if the caller holds at least ``minimum`` in it.

    Raises NotFound where the caller may not see the community, Forbidden where it may see it
    but lacks the role.
    """
    community = community_get_for_viewer(user=user, slug=slug)
    if not at_least(getattr(community, "my_role", None), minimum):
        raise Forbidden(f"Requires the {minimum.value} role or higher.")
    return community


def members_list(*, community: Community) -> QuerySet[Membership]:
    return Membership.objects.filter(community=community).select_related("user")


def bans_list(*, community: Community) -> QuerySet[Ban]:
    return Ban.objects.filter(community=community).select_related("user", "by")


def invites_list(*, community: Community) -> QuerySet[Invite]:
    return Invite.objects.filter(community=community, revoked_at__isnull=True)


REVOKED, EXPIRED, USED_UP, BANNED = "revoked", "expired", "used_up", "banned"
# Why an invite preview is not valid (docs/api.md, Invites).
INVITE_REASONS = (REVOKED, EXPIRED, USED_UP, BANNED)


def invite_spent(invite: Invite) -> str | None:
    """Why the code can no longer be used (``revoked``, ``expired`` or ``used_up``, in that
    order), or None while it can. Accepting a spent code is 410 (docs/api.md, Invites)."""
    if invite.revoked_at is not None:
        return REVOKED
    if invite.expires_at is not None and invite.expires_at <= timezone.now():
        return EXPIRED
    if invite.max_uses is not None and invite.uses >= invite.max_uses:
        return USED_UP
    return None


@dataclass(frozen=True)
class InvitePreview:
    """What an invite's holder sees before accepting it (docs/api.md, Invites)."""

    code: str
    community: Community
    expires_at: datetime | None
    valid: bool
    reason: str | None  # why not valid: revoked, expired, used_up or banned


def invite_preview(*, user: AnyUser, code: str) -> InvitePreview:
    """The invite and its community for anyone holding the code, private communities included:
    the code is the secret. NotFound for an unknown code. ``valid``: the code can still be used
    and the caller is not banned (a member's accept answers 200 whatever it says)."""
    invite = Invite.objects.filter(code=code).first()
    if invite is None:
        raise NotFound("No such invite.")
    community = _annotated_communities(user).get(pk=invite.community_id)
    reason = invite_spent(invite)
    if reason is None and user.pk is not None and is_banned(community=community, user_id=user.pk):
        reason = BANNED
    return InvitePreview(
        code=invite.code,
        community=community,
        expires_at=invite.expires_at,
        valid=reason is None,
        reason=reason,
    )


def join_requests_list(*, community: Community) -> QuerySet[JoinRequest]:
    return JoinRequest.objects.filter(community=community).select_related("user")


def audit_list(*, community: Community) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(community=community).select_related("actor")


def moderated_community_ids(*, user: AnyUser) -> QuerySet[Any]:
    """The communities where ``user`` is a moderator or above, as a subquery of ids (the
    desk's scope for a staff user who is not a superuser)."""
    moderating = [role.value for role in Role if at_least(role.value, Role.MODERATOR)]
    user_id: Any = user.pk
    return Membership.objects.filter(user_id=user_id, role__in=moderating).values("community_id")


def readable_rooms_filter(user: AnyUser, *, prefix: str = "") -> Q:
    """A Q over Room (or a relation to it through ``prefix``) for the rooms ``user`` can read.

    A reader of a channel is a member of its community; for a private channel, a member of the
    room or the community's owner or an admin. A DM (no community) is read by its members only
    (docs/dms.md). ``readable_rooms_sql`` states the same rule in SQL: change both together.
    """
    if not user.is_authenticated:
        return Q(pk__in=[])
    member_of = Membership.objects.filter(user_id=user.pk).values("community_id")
    staff_of = Membership.objects.filter(user_id=user.pk, role__in=_ADMIN_ROLES).values(
        "community_id"
    )
    my_dms = RoomMember.objects.filter(user_id=user.pk, room__community__isnull=True).values(
        "room_id"
    )
    p = prefix
    return (
        Q(**{f"{p}community_id__in": member_of})
        & (
            Q(**{f"{p}private": False})
            | Q(**{f"{p}room_members__user_id": user.pk})
            | Q(**{f"{p}community_id__in": staff_of})
        )
    ) | Q(**{f"{p}pk__in": my_dms})


def _room_related(name: str) -> Any:
    # The chat app's models, reached through Room's reverse relations: chat uses communities,
    # never the other way round, so this module imports nothing from chat.
    return cast(type[Model], Room._meta.get_field(name).related_model)._default_manager


def room_unread(user: AnyUser) -> Coalesce:
    """For ``annotate`` over Room: the top-level messages by others after ``user``'s read
    marker (all of them without one), deleted ones and thread replies excluded (docs/api.md).
    One correlated subquery, so a list costs no query per room."""
    marker = (
        _room_related("read_markers")
        .filter(room=OuterRef(OuterRef("pk")), user_id=user.pk)
        .values("seq")
    )
    counts = (
        _room_related("messages")
        .filter(room=OuterRef("pk"), deleted=False, thread_root__isnull=True)
        .exclude(author_id=user.pk)
        .filter(seq__gt=Coalesce(Subquery(marker[:1]), Value(0)))
        .order_by()
        .values("room")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts[:1], output_field=IntegerField()), Value(0))


def rooms_readable(
    *, user: AnyUser, community: Community | None = None, with_unread: bool = False
) -> QuerySet[Room]:
    """The rooms ``user`` can read, of one community or all; ``with_unread`` annotates each
    with the caller's ``unread``."""
    ids = Room.objects.filter(readable_rooms_filter(user)).values("pk")
    qs = Room.objects.filter(pk__in=ids).select_related("community")
    if community is not None:
        qs = qs.filter(community=community)
    else:  # DMs may be among them: their members, in one more query
        dm_members = RoomMember.objects.filter(room__community__isnull=True).select_related("user")
        qs = qs.prefetch_related(Prefetch("room_members", queryset=dm_members))
    if with_unread:
        qs = qs.annotate(unread=room_unread(user))
    # Channels by community and name, then DMs (no community) by id.
    return qs.order_by(F("community__slug").asc(nulls_last=True), "name", "pk")


def room_get_for_reader(*, user: AnyUser, room_id: int, with_unread: bool = False) -> Room:
    """The room if ``user`` can read it; NotFound both for a missing and an unreadable room."""
    room = rooms_readable(user=user, with_unread=with_unread).filter(pk=room_id).first()
    if room is None:
        raise NotFound("No such room.")
    return room


def room_get_for_role(*, user: AnyUser, room_id: int, minimum: Role) -> Room:
    """The room if ``user`` can read it and holds at least ``minimum`` in its community.

    Raises NotFound for a missing or unreadable room (as ``room_get_for_reader``), Forbidden
    where the caller reads it but lacks the role. Views ask it before validating a body, so
    that who may not act learns nothing from a 400; the services check again under lock.
    """
    room = room_get_for_reader(user=user, room_id=room_id)
    role = None
    if room.community_id is None:  # a DM has no roles: nobody administers it
        raise Forbidden(f"Requires the {minimum.value} role or higher.")
    if user.is_authenticated:  # always, for a reader; says so to the type checker
        role = (
            Membership.objects.filter(community_id=room.community_id, user_id=user.pk)
            .values_list("role", flat=True)
            .first()
        )
    if not at_least(role, minimum):
        raise Forbidden(f"Requires the {minimum.value} role or higher.")
    return room


def room_can_read(*, user: AnyUser, room: Room) -> bool:
    return Room.objects.filter(readable_rooms_filter(user), pk=room.pk).exists()


def room_members_list(*, room: Room) -> QuerySet[Membership]:
    """The room's readers as community memberships: every member for a public room; the
    room's members and the community's owner and admins for a private one (a DM's members:
    ``dm_members_as_memberships``)."""
    if room.community is None:
        return Membership.objects.none()
    qs = members_list(community=room.community)
    if room.private:
        qs = qs.filter(Q(user__room_memberships__room=room) | Q(role__in=_ADMIN_ROLES))
    return qs.distinct()


def dm_members_as_memberships(*, room: Room, user_id: int | None = None) -> list[Membership]:
    """A DM's members in the shape of community members (role ``member``, joined when
    added), unsaved, by user id; with ``user_id``, that member alone."""
    rows = RoomMember.objects.filter(room=room).select_related("user").order_by("user_id")
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    return [
        Membership(user=row.user, role=Role.MEMBER.value, joined_at=row.added_at) for row in rows
    ]


def dm_members(room_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Each DM's members as Users (``{id, username}``), by user id, in one query."""
    rows = (
        RoomMember.objects.filter(room_id__in=list(room_ids))
        .order_by("room_id", "user_id")
        .values_list("room_id", "user_id", "user__username")
    )
    found: dict[int, list[dict[str, Any]]] = {}
    for room_id, user_id, username in rows:
        found.setdefault(room_id, []).append({"id": user_id, "username": username})
    return found


def room_reader_ids(*, room_id: int, limit: int | None = None) -> frozenset[int]:
    """The ids of every user who can read the room now (empty for a missing room); with
    ``limit``, at most that many (enough to tell a room above a size from one below it)."""
    room = Room.objects.filter(pk=room_id).values("community_id", "private").first()
    if room is None:
        return frozenset()
    if room["community_id"] is None:  # a DM: its members
        dm = RoomMember.objects.filter(room_id=room_id).order_by().values_list("user_id", flat=True)
        return frozenset(dm[:limit] if limit is not None else dm)
    members = Membership.objects.filter(community_id=room["community_id"])
    if room["private"]:
        members = members.filter(
            Q(role__in=_ADMIN_ROLES) | Q(user__room_memberships__room_id=room_id)
        )
    ids = members.order_by().values_list("user_id", flat=True).distinct()
    return frozenset(ids[:limit] if limit is not None else ids)


# --- the statements of a connection opening, written by hand ---------------------------------
#
# Every connection runs them as it opens (``hello``, presence), so a reconnect storm runs them
# thousands of times a second. The ORM builds the rule of ``readable_rooms_filter`` with nested
# subqueries in more CPU than the database spends answering it: these state the same rule in
# SQL, each read one statement. The tests hold them equal to the ORM's answers.


def _table(model: type[Model]) -> str:
    return str(connection.ops.quote_name(model._meta.db_table))


def readable_rooms_sql(user_id: int) -> tuple[str, list[Any]]:
    """``SELECT r.id`` of every room ``user_id`` can read (``readable_rooms_filter``'s rule),
    and its parameters, to embed in a statement as ``IN (…)``."""
    sql = (
        f"SELECT r.id FROM {_table(Room)} r"  # noqa: S608 (tables of the models; values: params)
        f" JOIN {_table(Membership)} me ON me.community_id = r.community_id AND me.user_id = %s"
        " WHERE NOT r.private OR me.role IN (%s, %s) OR EXISTS ("
        f"SELECT 1 FROM {_table(RoomMember)} x WHERE x.room_id = r.id AND x.user_id = %s)"
        # DMs: no community, read by their members only.
        f" UNION ALL SELECT d.room_id FROM {_table(RoomMember)} d"
        f" JOIN {_table(Room)} dr ON dr.id = d.room_id AND dr.community_id IS NULL"
        " WHERE d.user_id = %s"
    )
    return sql, [user_id, *_ADMIN_ROLES, user_id, user_id]


def co_reader_ids(*, user_id: int, max_readers: int) -> set[int]:
    """Everyone who reads a room that ``user_id`` reads, counting only rooms of at most
    ``max_readers`` readers (``user_id`` among them), in one statement: the union of
    ``room_reader_ids`` over those rooms. Each room's size is counted up to one past the
    bound, never through all of a big room's readers."""
    readable, params = readable_rooms_sql(user_id)
    room, membership, member = _table(Room), _table(Membership), _table(RoomMember)
    # Readers of a private room: the community's owner and admins, and the room's members
    # (who are members of the community too).
    private_reader = (
        f"(m.role IN (%s, %s) OR EXISTS (SELECT 1 FROM {member} x"  # noqa: S608
        " WHERE x.room_id = r.id AND x.user_id = m.user_id))"
    )
    sql = (
        # A public room's readers are its community's members: one count per community.
        f"SELECT m.user_id FROM {membership} m WHERE m.community_id IN ("  # noqa: S608
        f"SELECT r.community_id FROM {room} r WHERE r.id IN ({readable}) AND NOT r.private"
        f" AND (SELECT COUNT(*) FROM (SELECT 1 FROM {membership} m"
        " WHERE m.community_id = r.community_id LIMIT %s) AS n) <= %s)"
        " UNION "
        f"SELECT m.user_id FROM {room} r JOIN {membership} m ON m.community_id = r.community_id"
        f" WHERE r.id IN ({readable}) AND r.private AND {private_reader}"
        f" AND (SELECT COUNT(*) FROM (SELECT 1 FROM {membership} m"
        f" WHERE m.community_id = r.community_id AND {private_reader} LIMIT %s) AS n) <= %s"
        # The members of the user's DMs (at most ten each: always under the bound).
        " UNION "
        f"SELECT o.user_id FROM {member} d JOIN {room} r ON r.id = d.room_id"
        f" AND r.community_id IS NULL JOIN {member} o ON o.room_id = d.room_id"
        " WHERE d.user_id = %s"
    )
    bound = [max_readers + 1, max_readers]
    args = [*params, *bound, *params, *_ADMIN_ROLES, *_ADMIN_ROLES, *bound, user_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, args)
        return {row[0] for row in cursor.fetchall()}


def users_search(*, user: AnyUser, q: str) -> QuerySet[Any]:
    """Active users whose username starts with ``q`` (any case) and who share a community with
    ``user`` (the caller excluded), by username: whom the caller could start a DM with under
    the default policy (docs/dms.md)."""
    from django.contrib.auth import get_user_model
    from django.db.models.functions import Lower

    user_id: Any = user.pk
    mine = Membership.objects.filter(user_id=user_id).values("community_id")
    sharing = Membership.objects.filter(community_id__in=mine).values("user_id")
    return (
        get_user_model()
        .objects.annotate(lower_name=Lower("username"))
        .filter(is_active=True, pk__in=sharing, lower_name__startswith=q.lower())
        .exclude(pk=user_id)
        .order_by("lower_name", "pk")
    )
