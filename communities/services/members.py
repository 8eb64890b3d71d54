"""Joining, leaving, roles, kicks and mutes."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from communities import events
from communities.models import Community, JoinRequest, Membership, RoomMember
from communities.roles import Role, can_grant
from communities.services.access import (
    actor_membership,
    is_banned,
    lock_community,
    require_outranks,
    require_role,
)
from communities.services.audit import audit_record, user_target
from sphere.errors import Banned, Conflict, Forbidden, Invalid, NotFound

MAX_MUTE_MINUTES = 28 * 24 * 60


def _add_member(*, community: Community, user_id: int) -> Membership:
    """Admit a user; their connections get ``room.added`` for each room they can now read."""
    finish = events.track_user(user_id=user_id, community=community)
    membership, _ = Membership.objects.get_or_create(community=community, user_id=user_id)
    JoinRequest.objects.filter(community=community, user_id=user_id).delete()
    finish("removed")
    return membership


def membership_end(*, community: Community, user_id: int, reason: str) -> None:
    """Remove a user from the community and its private rooms (leave, kick, ban); their
    connections get ``room.removed`` with ``reason`` for every room they could read."""
    finish = events.track_user(user_id=user_id, community=community)
    Membership.objects.filter(community=community, user_id=user_id).delete()
    RoomMember.objects.filter(room__community=community, user_id=user_id).delete()
    finish(reason)


def community_join(*, actor: User, community: Community) -> Membership | JoinRequest:
    """Join a public community (a Membership) or ask to join a private one (a JoinRequest).

    Raises Banned for a banned user. Joining again returns the existing membership or request.
    """
    with transaction.atomic():
        community = lock_community(community)
        existing = actor_membership(actor=actor, community=community)
        if existing is not None:
            return existing
        if is_banned(community=community, user_id=actor.pk):
            raise Banned("You are banned from this community.")
        if community.visibility == Community.Visibility.PRIVATE:
            request, _ = JoinRequest.objects.get_or_create(community=community, user=actor)
            return request
        return _add_member(community=community, user_id=actor.pk)


def community_leave(*, actor: User, community: Community) -> None:
    """Leave; the owner must transfer ownership first (Conflict)."""
    with transaction.atomic():
        community = lock_community(community)
        membership = require_role(actor=actor, community=community, minimum=Role.MEMBER)
        if membership.role == Role.OWNER:
            raise Conflict("The owner cannot leave; transfer ownership first.")
        membership_end(community=community, user_id=actor.pk, reason="left")


def _target_membership(*, community: Community, user_id: int) -> Membership:
    target = (
        Membership.objects.select_for_update()
        .filter(community=community, user_id=user_id)
        .select_related("user")
        .first()
    )
    if target is None:
        raise NotFound("No such member.")
    return target


def member_set_role(*, actor: User, community: Community, user_id: int, role: str) -> Membership:
    """Change a member's role by the rank rule. Granting ``owner`` transfers ownership: the
    old owner becomes admin. Records ``member.role``."""
    if role not in {r.value for r in Role}:
        raise Invalid("Unknown role.", fields={"role": [f"One of {', '.join(Role)}."]})
    with transaction.atomic():
        community = lock_community(community)
        me = require_role(actor=actor, community=community, minimum=Role.MODERATOR)
        target = _target_membership(community=community, user_id=user_id)
        require_outranks(actor_role=me.role, target_role=target.role)
        if not can_grant(me.role, role):
            raise Forbidden(f"Your role cannot grant {role}.")
        before = target.role
        finish = events.track_user(user_id=target.user_id, community=community)
        if role == Role.OWNER:
            me.role = Role.ADMIN.value
            me.save(update_fields=["role"])
        target.role = role
        target.save(update_fields=["role"])
        finish("removed")  # admins read every private room: a demotion may lose some
        audit_record(
            actor=actor,
            community=community,
            action="member.role",
            target=user_target(target.user),
            detail={"from": before, "to": role},
        )
    return target


def member_kick(*, actor: User, community: Community, user_id: int) -> None:
    """Remove a member of a lower rank. Records ``member.kick``."""
    with transaction.atomic():
        community = lock_community(community)
        me = require_role(actor=actor, community=community, minimum=Role.MODERATOR)
        target = _target_membership(community=community, user_id=user_id)
        require_outranks(actor_role=me.role, target_role=target.role)
        membership_end(community=community, user_id=user_id, reason="kicked")
        audit_record(
            actor=actor,
            community=community,
            action="member.kick",
            target=user_target(target.user),
        )


def member_mute(*, actor: User, community: Community, user_id: int, minutes: int) -> Membership:
    """Mute a member of a lower rank for ``minutes`` (1 to 28 days): they read but cannot post.
    Records ``member.mute``."""
    if not 1 <= minutes <= MAX_MUTE_MINUTES:
        raise Invalid("Bad duration.", fields={"minutes": [f"1 to {MAX_MUTE_MINUTES}."]})
    with transaction.atomic():
        me = require_role(actor=actor, community=community, minimum=Role.MODERATOR)
        target = _target_membership(community=community, user_id=user_id)
        require_outranks(actor_role=me.role, target_role=target.role)
        target.muted_until = timezone.now() + timedelta(minutes=minutes)
        target.save(update_fields=["muted_until"])
        audit_record(
            actor=actor,
            community=community,
            action="member.mute",
            target=user_target(target.user),
            detail={"minutes": minutes},
        )
    return target


def member_unmute(*, actor: User, community: Community, user_id: int) -> None:
    """Lift a mute early. Records ``member.unmute``."""
    with transaction.atomic():
        me = require_role(actor=actor, community=community, minimum=Role.MODERATOR)
        target = _target_membership(community=community, user_id=user_id)
        require_outranks(actor_role=me.role, target_role=target.role)
        target.muted_until = None
        target.save(update_fields=["muted_until"])
        audit_record(
            actor=actor,
            community=community,
            action="member.unmute",
            target=user_target(target.user),
        )


def user_get(*, user_id: int) -> User:
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        raise Invalid("No such user.", fields={"user_id": ["No such user."]})
    return user
