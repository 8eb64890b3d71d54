"""Creating, changing and deleting communities."""

from __future__ import annotations

import unicodedata
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from communities import events
from communities.models import Community, Membership, Room, community_name_key
from communities.roles import Role
from communities.services.access import require_role
from communities.services.audit import audit_record
from sphere.errors import Conflict, Invalid

DEFAULT_ROOM = "general"

# Controls, invisible format characters (zero-width, bidi overrides and isolates, BOM, …),
# surrogates and line or paragraph separators: what lets two names look alike, or a name
# reorder or hide the text around it (docs/api.md, "Names").
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_MULTILINE = frozenset("\n\r\t")
# A name's key, in UTF-8, stays well within what a unique index holds.
_MAX_KEY_BYTES = 1200


def clean_text(value: str, *, field: str, multiline: bool = False) -> str:
    """``value`` unchanged; Invalid naming ``field`` when it holds a character of
    ``_REFUSED_CATEGORIES`` (newline, carriage return and tab allowed where ``multiline``)."""
    for ch in value:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES and not (multiline and ch in _MULTILINE):
            allowed = " other than line breaks and tabs" if multiline else ""
            raise Invalid(
                f"The {field} holds a control or invisible format character.",
                fields={
                    field: [
                        f"No control or format characters{allowed} (such as zero-width or "
                        "bidirectional controls)."
                    ]
                },
            )
    return value


def clean_name(value: str) -> str:
    """A community or room name: trimmed, not blank, one line of visible text."""
    value = value.strip()
    if not value:
        raise Invalid("A name is required.", fields={"name": ["This field may not be blank."]})
    return clean_text(value, field="name")


def name_key_of(name: str) -> str:
    """``community_name_key(name)``; Invalid if it grows too long once normalized."""
    key = community_name_key(name)
    if len(key.encode()) > _MAX_KEY_BYTES:
        raise Invalid("The name is too long.", fields={"name": ["Too long once normalized."]})
    return key


def _name_taken() -> Conflict:
    return Conflict("A community of that name exists.", fields={"name": ["This name is taken."]})


def _slug_taken() -> Conflict:
    return Conflict("That slug is taken.", fields={"slug": ["This slug is taken."]})


def _free_slug(base: str) -> str:
    base = (base or "community")[:40].strip("-") or "community"
    slug, n = base, 1
    while Community.objects.filter(slug__iexact=slug).exists():
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

    The slug is stored in lower case; a requested slug taken in any case, or a name another
    community has by ``community_name_key``, raises Conflict; without a slug, a free one is
    derived from the name. Records ``community.create``.
    """
    name = clean_name(name)
    key = name_key_of(name)
    description = clean_text(description, field="description", multiline=True)
    slug = slug.lower() if slug else None
    try:
        with transaction.atomic():
            if slug and Community.objects.filter(slug__iexact=slug).exists():
                raise _slug_taken()
            if Community.objects.filter(name_key=key).exists():
                raise _name_taken()
            chosen = slug or _free_slug(slugify(name))
            community = Community.objects.create(
                slug=chosen, name=name, description=description, visibility=visibility
            )
            Membership.objects.create(community=community, user=actor, role=Role.OWNER.value)
            general = Room.objects.create(community=community, name=DEFAULT_ROOM)
            events.grant_room_to_readers(room=general)
            audit_record(actor=actor, community=community, action="community.create")
    except IntegrityError as exc:  # a concurrent creation took the name or the slug
        if Community.objects.filter(name_key=key).exists():
            raise _name_taken() from exc
        raise _slug_taken() from exc
    return community


def community_update(*, actor: User, community: Community, changes: dict[str, Any]) -> Community:
    """Change name, description or visibility (admin and up); the name follows the rules of
    ``community_create`` (Conflict if another community has it). Records ``community.update``."""
    allowed = {"name", "description", "visibility"}
    changes = {k: v for k, v in changes.items() if k in allowed}
    try:
        with transaction.atomic():
            require_role(actor=actor, community=community, minimum=Role.ADMIN)
            if "name" in changes:
                changes["name"] = clean_name(changes["name"])
                key = name_key_of(changes["name"])
                if Community.objects.filter(name_key=key).exclude(pk=community.pk).exists():
                    raise _name_taken()
            if "description" in changes:
                changes["description"] = clean_text(
                    changes["description"], field="description", multiline=True
                )
            _community_save(actor=actor, community=community, changes=changes)
    except IntegrityError as exc:  # a concurrent change took the name
        raise _name_taken() from exc
    return community


def _community_save(*, actor: User, community: Community, changes: dict[str, Any]) -> None:
    before = {field: getattr(community, field) for field in changes}
    for field, value in changes.items():
        setattr(community, field, value)
    community.save(update_fields=[*changes] or None)
    if changes:
        audit_record(
            actor=actor,
            community=community,
            action="community.update",
            detail={"before": before, "after": changes},
        )


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
