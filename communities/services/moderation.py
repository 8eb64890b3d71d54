"""Bans and join-request decisions."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from communities.models import Ban, Community, JoinRequest, Membership
from communities.roles import Role
from communities.services.access import (
    actor_membership,
    is_banned,
    lock_community,
    require_outranks,
    require_role,
)
from communities.services.audit import audit_record, user_target
from communities.services.members import _add_member, membership_end, user_get
from sphere.errors import Conflict, NotFound

MAX_REASON = 500


def ban_create(*, actor: User, community: Community, user_id: int, reason: str = "") -> Ban:
    """Ban a user of a lower rank, member or not: ends the membership, drops a pending join
    request and blocks joining. Conflict if already banned. Records ``member.ban``."""
    target_user = user_get(user_id=user_id)
    with transaction.atomic():
        community = lock_community(community)
        me = require_role(actor=actor, community=community, minimum=Role.MODERATOR)
        target = actor_membership(actor=target_user, community=community)
        require_outranks(actor_role=me.role, target_role=target.role if target else None)
        if is_banned(community=community, user_id=user_id):
            raise Conflict("This user is already banned.")
        membership_end(community=community, user_id=user_id, reason="banned")
        JoinRequest.objects.filter(community=community, user_id=user_id).delete()
        ban = Ban.objects.create(
            community=community, user=target_user, reason=reason.strip()[:MAX_REASON], by=actor
        )
        audit_record(
            actor=actor,
            community=community,
            action="member.ban",
            target=user_target(target_user),
            detail={"reason": ban.reason},
        )
    return ban


def ban_lift(*, actor: User, community: Community, user_id: int) -> None:
    """Lift a ban (NotFound if there is none). Records ``member.unban``."""
    with transaction.atomic():
        require_role(actor=actor, community=community, minimum=Role.MODERATOR)
        deleted, _ = Ban.objects.filter(community=community, user_id=user_id).delete()
        if not deleted:
            raise NotFound("No such ban.")
        audit_record(
            actor=actor, community=community, action="member.unban", target=f"user:{user_id}"
        )


def _pending(*, community: Community, request_id: int) -> JoinRequest:
    request = (
        JoinRequest.objects.select_for_update()
        .select_related("user")
        .filter(community=community, pk=request_id)
        .first()
    )
    if request is None:
        raise NotFound("No such join request.")
    return request


def join_request_approve(*, actor: User, community: Community, request_id: int) -> Membership:
    """Admit the requester (admin and up). Conflict if they were banned since asking.
    Records ``joinrequest.approve``."""
    with transaction.atomic():
        community = lock_community(community)
        require_role(actor=actor, community=community, minimum=Role.ADMIN)
        request = _pending(community=community, request_id=request_id)
        if is_banned(community=community, user_id=request.user_id):
            raise Conflict("The requester is banned.")
        membership = _add_member(community=community, user_id=request.user_id)
        audit_record(
            actor=actor,
            community=community,
            action="joinrequest.approve",
            target=user_target(request.user),
        )
    return Membership.objects.select_related("user").get(pk=membership.pk)


def join_request_deny(*, actor: User, community: Community, request_id: int) -> None:
    """Refuse the request (admin and up). Records ``joinrequest.deny``."""
    with transaction.atomic():
        require_role(actor=actor, community=community, minimum=Role.ADMIN)
        request = _pending(community=community, request_id=request_id)
        request.delete()
        audit_record(
            actor=actor,
            community=community,
            action="joinrequest.deny",
            target=user_target(request.user),
        )
