"""Rooms and private-room membership."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from communities import events
from communities.models import Community, Membership, Room, RoomMember, community_name_key
from communities.roles import Role
from communities.services.access import require_role
from communities.services.audit import audit_record, user_target
from communities.services.communities import clean_name, clean_text
from communities.services.members import user_get
from sphere.errors import Conflict, Forbidden, Invalid, NotFound

MAX_SLOW_MODE_S = 6 * 3600
_FIELDS = {"name", "topic", "private", "slow_mode_s"}


def _clean(changes: dict[str, Any]) -> dict[str, Any]:
    cleaned = {k: v for k, v in changes.items() if k in _FIELDS}
    if "name" in cleaned:
        cleaned["name"] = clean_name(cleaned["name"])
    if "topic" in cleaned:
        cleaned["topic"] = clean_text(cleaned["topic"], field="topic")
    if "slow_mode_s" in cleaned and not 0 <= cleaned["slow_mode_s"] <= MAX_SLOW_MODE_S:
        raise Invalid("Bad slow mode.", fields={"slow_mode_s": [f"0 to {MAX_SLOW_MODE_S}."]})
    return cleaned


def _name_taken() -> Conflict:
    return Conflict("A room of that name exists.", fields={"name": ["This name is taken."]})


def _refuse_taken_name(*, community: Community, name: str, room_id: int | None = None) -> None:
    """Conflict if another room of the community has ``name`` by ``community_name_key`` (the
    same comparison in both databases; the constraint on the lower-case name backs it up)."""
    key = community_name_key(name)
    others = Room.objects.filter(community=community)
    if room_id is not None:
        others = others.exclude(pk=room_id)
    if any(community_name_key(other) == key for other in others.values_list("name", flat=True)):
        raise _name_taken()


def room_create(
    *,
    actor: User,
    community: Community,
    name: str,
    topic: str = "",
    private: bool = False,
    slow_mode_s: int = 0,
) -> Room:
    """A new room (admin and up); room names are unique per community, compared like
    community names (``community_name_key``). Records ``room.create``."""
    fields: dict[str, Any] = {
        "name": name,
        "topic": topic,
        "private": private,
        "slow_mode_s": slow_mode_s,
    }
    try:
        with transaction.atomic():
            require_role(actor=actor, community=community, minimum=Role.ADMIN)
            fields = _clean(fields)
            _refuse_taken_name(community=community, name=fields["name"])
            room = Room.objects.create(community=community, **fields)
            events.grant_room_to_readers(room=room)
            audit_record(
                actor=actor,
                community=community,
                action="room.create",
                target=f"room:{room.pk}",
                detail={"name": room.name, "private": room.private},
            )
    except IntegrityError as exc:
        raise _name_taken() from exc
    return room


def room_update(*, actor: User, room: Room, changes: dict[str, Any]) -> Room:
    """Change a room: admins change anything, moderators only ``slow_mode_s``.
    Records ``room.update``."""
    changes = {k: v for k, v in changes.items() if k in _FIELDS}
    minimum = Role.MODERATOR if set(changes) <= {"slow_mode_s"} else Role.ADMIN
    try:
        with transaction.atomic():
            room = (
                Room.objects.select_for_update(of=("self",))
                .select_related("community")
                .get(pk=room.pk)
            )
            require_role(actor=actor, community=_community_of(room), minimum=minimum)
            changes = _clean(changes)  # after the role: permission comes before validation
            if "name" in changes:
                _refuse_taken_name(
                    community=_community_of(room), name=changes["name"], room_id=room.pk
                )
            finish = events.track_room(room=room)
            before = {field: getattr(room, field) for field in changes}
            for field, value in changes.items():
                setattr(room, field, value)
            if changes:
                room.save(update_fields=list(changes))
                finish("removed")
                events.room_updated(room=room)
                audit_record(
                    actor=actor,
                    community=_community_of(room),
                    action="room.update",
                    target=f"room:{room.pk}",
                    detail={"before": before, "after": changes},
                )
    except IntegrityError as exc:
        raise _name_taken() from exc
    return room


def room_delete(*, actor: User, room: Room) -> None:
    """Delete a room and its history (admin and up). Records ``room.delete``."""
    with transaction.atomic():
        require_role(actor=actor, community=_community_of(room), minimum=Role.ADMIN)
        audit_record(
            actor=actor,
            community=_community_of(room),
            action="room.delete",
            target=f"room:{room.pk}",
            detail={"name": room.name},
        )
        finish = events.track_room(room=room)
        room.delete()
        finish("deleted")


def _community_of(room: Room) -> Community:
    """The room's community; a DM has none, and nobody administers it (Forbidden)."""
    if room.community is None:
        raise Forbidden("A direct message has no admins.")
    return room.community


def _private_room_admin(actor: User, room: Room) -> None:
    require_role(actor=actor, community=_community_of(room), minimum=Role.ADMIN)
    if not room.private:
        raise Conflict("Only private rooms have their own members.")


def room_member_add(*, actor: User, room: Room, user_id: int) -> Membership:
    """Add a community member to a private room (admin and up); adding again is a no-op.
    Records ``room.member_add``."""
    user = user_get(user_id=user_id)
    with transaction.atomic():
        _private_room_admin(actor, room)
        membership = (
            Membership.objects.select_related("user")
            .filter(community=_community_of(room), user=user)
            .first()
        )
        if membership is None:
            raise Invalid(
                "Not a member of the community.", fields={"user_id": ["Not a community member."]}
            )
        finish = events.track_room(room=room)
        _, created = RoomMember.objects.get_or_create(room=room, user=user)
        finish("removed")
        if created:
            audit_record(
                actor=actor,
                community=_community_of(room),
                action="room.member_add",
                target=user_target(user),
                detail={"room": room.pk},
            )
    return membership


def room_member_remove(*, actor: User, room: Room, user_id: int) -> None:
    """Remove a user from a private room (admin and up). Owners and admins read every room,
    so removing one of them changes nothing they can read. Records ``room.member_remove``."""
    with transaction.atomic():
        _private_room_admin(actor, room)
        finish = events.track_room(room=room)
        deleted, _ = RoomMember.objects.filter(room=room, user_id=user_id).delete()
        if not deleted:
            raise NotFound("Not a member of this room.")
        finish("removed")
        audit_record(
            actor=actor,
            community=_community_of(room),
            action="room.member_remove",
            target=f"user:{user_id}",
            detail={"room": room.pk},
        )
