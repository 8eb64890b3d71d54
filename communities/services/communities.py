"""Creating, changing and deleting communities."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from communities import events
from communities.models import Community, Membership, Room
from communities.roles import Role
from communities.services.access import require_role
from communities.services.audit import audit_record
from sphere.errors import Conflict, Invalid

DEFAULT_ROOM = "general"


def _free_slug(base: str) -> str:
    base = (base or "community")[:40].strip("-") or "community"
    slug, n = base, 1
    while Community.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def community_create(
    *,
    actor: User,
    name: str,
    slug: str | None = None,
    description: str = "",
    visibility: str = Community.Visibility.PUBLIC,
) -> Community:
    """Create a community owned by ``actor`` with a room ``general``.

    A requested slug that is taken raises Conflict; without one, a free slug is derived from
    the name. Records ``community.create``.
    """
    name = name.strip()
    if not name:
        raise Invalid("A name is required.", fields={"name": ["This field may not be blank."]})
    try:
        with transaction.atomic():
            chosen = slug or _free_slug(slugify(name))
            community = Community.objects.create(
                slug=chosen, name=name, description=description, visibility=visibility
            )
            Membership.objects.create(community=community, user=actor, role=Role.OWNER.value)
            general = Room.objects.create(community=community, name=DEFAULT_ROOM)
            events.grant_room_to_readers(room=general)
            audit_record(actor=actor, community=community, action="community.create")
    except IntegrityError as exc:
        raise Conflict("That slug is taken.", fields={"slug": ["This slug is taken."]}) from exc
    return community


def community_update(*, actor: User, community: Community, changes: dict[str, Any]) -> Community:
    """Change name, description or visibility (admin and up). Records ``community.update``."""
    allowed = {"name", "description", "visibility"}
    changes = {k: v for k, v in changes.items() if k in allowed}
    with transaction.atomic():
        require_role(actor=actor, community=community, minimum=Role.ADMIN)
        before = {field: getattr(community, field) for field in changes}
        for field, value in changes.items():
            setattr(community, field, value.strip() if field == "name" else value)
        if "name" in changes and not community.name:
            raise Invalid("A name is required.", fields={"name": ["This field may not be blank."]})
        community.save(update_fields=[*changes] or None)
        if changes:
            audit_record(
                actor=actor,
                community=community,
                action="community.update",
                detail={"before": before, "after": changes},
            )
    return community


def community_delete(*, actor: User, community: Community) -> None:
    """Delete the community and everything in it (owner only). Records ``community.delete``;
    the entry outlives the community under its slug."""
    with transaction.atomic():
        require_role(actor=actor, community=community, minimum=Role.OWNER)
        audit_record(
            actor=actor,
            community=community,
            action="community.delete",
            detail={"name": community.name},
        )
        finishes = [events.track_room(room=room) for room in community.rooms.all()]
        community.delete()
        for finish in finishes:
            finish("deleted")
