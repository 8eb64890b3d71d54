"""Roles as data: a frozen, ordered set and the one rank rule every moderation act obeys."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MODERATOR = "moderator"
    MEMBER = "member"


# Highest first. A non-member ranks below every role ("a ban may precede a join").
RANKS: dict[Role | None, int] = {
    Role.OWNER: 40,
    Role.ADMIN: 30,
    Role.MODERATOR: 20,
    Role.MEMBER: 10,
    None: 0,
}

ROLE_CHOICES = [(role.value, role.value) for role in Role]


def rank(role: str | None) -> int:
    return RANKS[Role(role) if role else None]


def at_least(role: str | None, minimum: Role) -> bool:
    return rank(role) >= RANKS[minimum]


def can_manage(actor_role: str | None, target_role: str | None) -> bool:
    """A role acts only on users of a strictly lower rank, non-members included."""
    return rank(actor_role) > rank(target_role) and rank(actor_role) >= RANKS[Role.MODERATOR]


def can_grant(actor_role: str | None, new_role: str) -> bool:
    """Admins grant up to moderator, the owner up to admin; granting owner is the owner's
    transfer of ownership."""
    if actor_role == Role.OWNER:
        return True
    return actor_role == Role.ADMIN and rank(new_role) < RANKS[Role.ADMIN]
