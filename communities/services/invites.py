"""Invite links: create, revoke, accept."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from communities.models import Community, Invite, Membership
from communities.roles import Role
from communities.selectors import EXPIRED, REVOKED, USED_UP, invite_spent
from communities.services.access import actor_membership, is_banned, require_role
from communities.services.audit import audit_record
from communities.services.members import _add_member
from sphere.errors import Banned, Gone, Invalid, NotFound

_SPENT_MESSAGES = {
    REVOKED: "This invite was revoked.",
    EXPIRED: "This invite has expired.",
    USED_UP: "This invite is used up.",
}
DEFAULT_EXPIRY_S = 7 * 24 * 3600
MAX_EXPIRY_S = 365 * 24 * 3600
MAX_USES = 100_000


def invite_create(
    *,
    actor: User,
    community: Community,
    max_uses: int | None = None,
    expires_in_s: int | None = DEFAULT_EXPIRY_S,
) -> Invite:
    """A new invite code (admin and up). ``max_uses`` None is unlimited; ``expires_in_s``
    None never expires. Records ``invite.create``."""
    if max_uses is not None and not 1 <= max_uses <= MAX_USES:
        raise Invalid("Bad max_uses.", fields={"max_uses": [f"1 to {MAX_USES}, or null."]})
    if expires_in_s is not None and not 60 <= expires_in_s <= MAX_EXPIRY_S:
        raise Invalid("Bad expiry.", fields={"expires_in_s": [f"60 to {MAX_EXPIRY_S}, or null."]})
    with transaction.atomic():
        require_role(actor=actor, community=community, minimum=Role.ADMIN)
        expires_at = (
            timezone.now() + timedelta(seconds=expires_in_s) if expires_in_s is not None else None
        )
        invite = Invite.objects.create(
            community=community,
            code=secrets.token_urlsafe(9),
            created_by=actor,
            max_uses=max_uses,
            expires_at=expires_at,
        )
        audit_record(
            actor=actor,
            community=community,
            action="invite.create",
            target=f"invite:{invite.code}",
            detail={"max_uses": max_uses, "expires_in_s": expires_in_s},
        )
    return invite


def invite_revoke(*, actor: User, community: Community, code: str) -> None:
    """Revoke a live invite (admin and up). Records ``invite.revoke``."""
    with transaction.atomic():
        require_role(actor=actor, community=community, minimum=Role.ADMIN)
        revoked = Invite.objects.filter(
            community=community, code=code, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        if not revoked:
            raise NotFound("No such invite.")
        audit_record(
            actor=actor, community=community, action="invite.revoke", target=f"invite:{code}"
        )


def invite_accept(*, actor: User, code: str) -> Membership:
    """Join through an invite, public or private community alike.

    A member gets their membership back and no use is counted. Raises NotFound for an unknown
    code, Gone when expired, used up or revoked, Banned for a banned user.
    """
    with transaction.atomic():
        invite = (
            Invite.objects.select_for_update().select_related("community").filter(code=code).first()
        )
        if invite is None:
            raise NotFound("No such invite.")
        community = invite.community
        existing = actor_membership(actor=actor, community=community)
        if existing is not None:
            return Membership.objects.select_related("user", "community").get(pk=existing.pk)
        spent = invite_spent(invite)
        if spent is not None:
            raise Gone(_SPENT_MESSAGES[spent])
        if is_banned(community=community, user_id=actor.pk):
            raise Banned("You are banned from this community.")
        membership = _add_member(community=community, user_id=actor.pk)
        invite.uses += 1
        invite.save(update_fields=["uses"])
    return Membership.objects.select_related("user", "community").get(pk=membership.pk)
