"""Permission checks shared by the services: who the actor is in a community, under lock."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.utils import timezone

from communities.models import Ban, Community, Membership
from communities.roles import Role, at_least, can_manage
from sphere.errors import Forbidden, Muted, NotFound


def actor_membership(*, actor: User, community: Community) -> Membership | None:
    return Membership.objects.filter(community=community, user_id=actor.pk).first()


def require_role(*, actor: User, community: Community | None, minimum: Role) -> Membership:
    """The actor's membership if it holds ``minimum``; NotFound where the community is
    private and the actor not a member, Forbidden otherwise (a DM, which has no community,
    has no roles: Forbidden)."""
    if community is None:
        raise Forbidden(f"Requires the {minimum.value} role or higher.")
    membership = actor_membership(actor=actor, community=community)
    if membership is None:
        if community.visibility == Community.Visibility.PRIVATE:
            raise NotFound("No such community.")
        raise Forbidden("Only members may do this.")
    if not at_least(membership.role, minimum):
        raise Forbidden(f"Requires the {minimum.value} role or higher.")
    return membership


def require_outranks(*, actor_role: str, target_role: str | None) -> None:
    if not can_manage(actor_role, target_role):
        raise Forbidden("You can act only on users of a lower rank.")


def require_unmuted(*, user_id: int, community_id: int) -> None:
    """Raise Muted (saying until when) while the user's mute in the community lasts."""
    until = (
        Membership.objects.filter(community_id=community_id, user_id=user_id)
        .values_list("muted_until", flat=True)
        .first()
    )
    if until is not None and until > timezone.now():
        raise Muted(until)


def is_banned(*, community: Community, user_id: int) -> bool:
    return Ban.objects.filter(community=community, user_id=user_id).exists()


def lock_community(community: Community) -> Community:
    """Serialise membership changes of one community (the owner rule and bans depend on it)."""
    return Community.objects.select_for_update().get(pk=community.pk)
